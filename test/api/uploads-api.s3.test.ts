import { randomBytes } from 'node:crypto';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import type { Gateway } from '../helpers/gateway.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';
import { uploadsApiSuite } from './uploads-api.suite.js';

let bucket: TestBucket;
beforeAll(async () => {
  bucket = await createTestBucket({ label: 'uploads' });
});
afterAll(async () => {
  await bucket?.destroy();
});

// Each gateway gets its own key prefix (a restarted one the same), so leftovers are its own.
const prefixes = new WeakMap<object, string>();
const prefixOf = (gw: Gateway) => prefixes.get(gw.store)!;

uploadsApiSuite({
  name: 's3',
  makeStore(same?: BlobStore) {
    const prefix = same ? prefixes.get(same)! : `up-${randomBytes(4).toString('hex')}/`;
    const s3 = bucket.config({ prefix, partSizeBytes: 8 * MiB });
    const store = new S3BlobStore(s3);
    prefixes.set(store, prefix);
    return { store, s3 };
  },
  async leftovers(gw) {
    const prefix = prefixOf(gw);
    const objects = await bucket.client.send(
      new ListObjectsV2Command({ Bucket: bucket.config().bucket, Prefix: `${prefix}.uploads/` }),
    );
    const uploads = await bucket.client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket.config().bucket, Prefix: prefix }),
    );
    return [
      ...(objects.Contents ?? []).map((o) => o.Key!),
      ...(uploads.Uploads ?? []).map((u) => `multipart upload of ${u.Key}`),
    ];
  },
  async crashMidComplete(gw) {
    const key = `${prefixOf(gw)}file-${randomBytes(16).toString('hex')}`;
    await bucket.client.send(new CreateMultipartUploadCommand({ Bucket: bucket.config().bucket, Key: key }));
  },
  // 1 GiB takes about two minutes against RGW on a 2-core machine: npm test sends 256 MiB, and CI
  // runs this case again at 1 GiB (FILES_TEST_UPLOAD_MIB=1024, .ci/run).
  bigBytes: Number(process.env.FILES_TEST_UPLOAD_MIB ?? 256) * MiB,
});
