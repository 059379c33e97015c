import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { startGateway } from '../helpers/gateway.js';
import { filePart, multipartBody, request } from '../helpers/http.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';
import { filesApiSuite } from './files-api.suite.js';

let bucket: TestBucket;
beforeAll(async () => {
  bucket = await createTestBucket({ label: 'api' });
});
afterAll(async () => {
  await bucket?.destroy();
});

// Each gateway gets its own key prefix, so "nothing left behind" checks see only its own objects.
const prefixes = new WeakMap<object, string>();
filesApiSuite({
  name: 's3',
  makeStore() {
    const prefix = `gw-${randomBytes(4).toString('hex')}/`;
    const s3 = bucket.config({ prefix, partSizeBytes: 5 * MiB });
    const store = new S3BlobStore(s3);
    prefixes.set(store, prefix);
    return { store, s3 };
  },
  // s3rver (local fallback only) cannot list multipart uploads (undefined); RGW always can.
  inProgress: (gw) => bucket.pendingUploads(prefixes.get(gw.store)),
});

describe('GET /v1/files-gateway/info on S3', () => {
  const KEY = 'sk-llamastack-0123456789';
  it('reports the bucket, endpoint, region and addressing the bytes really go to, and no credentials', async () => {
    const prefix = `info-${randomBytes(4).toString('hex')}/`;
    const s3 = bucket.config({ prefix, tlsVerify: false });
    const gw = await startGateway({ s3, apiKeys: [{ key: KEY, tenant: '', service: true }] });
    try {
      const headers = { authorization: `Bearer ${KEY}`, 'openai-project': 'alice' };
      const res = await request(`${gw.url}/v1/files-gateway/info`, { headers });
      expect(res.status).toBe(200);
      const info = res.json();
      expect(info).toMatchObject({
        object: 'files_gateway.info',
        store: 's3',
        s3: {
          endpoint: bucket.server.endpoint,
          bucket: s3.bucket,
          region: bucket.server.region,
          force_path_style: true,
          tls_verify: false,
          prefix,
        },
        caller: { tenant: 'alice', service: true },
      });
      expect(Object.keys(info.s3).sort()).toEqual([
        'bucket',
        'endpoint',
        'force_path_style',
        'prefix',
        'region',
        'tls_verify',
      ]);
      const text = res.body.toString();
      for (const secret of [bucket.server.accessKeyId, bucket.server.secretAccessKey])
        expect(text).not.toContain(secret);

      // A client that knows only what the info says finds the file's bytes there.
      const { body, contentType } = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart('where am I')]);
      const up = await request(`${gw.url}/v1/files`, {
        method: 'POST',
        headers: { ...headers, 'content-type': contentType },
        body,
      });
      expect(up.status).toBe(200);
      const reader = new S3Client({
        endpoint: info.s3.endpoint,
        region: info.s3.region,
        forcePathStyle: info.s3.force_path_style,
        credentials: { accessKeyId: bucket.server.accessKeyId, secretAccessKey: bucket.server.secretAccessKey },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      });
      try {
        const head = await reader.send(
          new HeadObjectCommand({ Bucket: info.s3.bucket, Key: `${info.s3.prefix}${up.json().id}` }),
        );
        expect(head.ContentLength).toBe('where am I'.length);
      } finally {
        reader.destroy();
      }
    } finally {
      await gw.close();
    }
  });
});
