import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { reindex } from '../../src/files/reindex.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { deterministicStream } from '../helpers/bytes.js';
import { startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';
import { scrape, sampleValue } from '../helpers/metrics.js';
import { streamingDownload, streamingUpload } from '../helpers/stream-upload.js';
import { listRecords } from '../helpers/catalog.js';

/** The gateway on a real S3 server (RGW): what the S3 store changes about the API's behaviour. */
describe('gateway on S3', () => {
  let bucket: TestBucket;
  let gw: Gateway;
  beforeAll(async () => {
    bucket = await createTestBucket({ label: 'gw' });
    // Empty prefix: objects at the bucket root under their file id, LlamaStack remote::s3's layout.
    gw = await startGateway({ s3: bucket.config() });
  });
  afterAll(async () => {
    await gw?.close();
    await bucket?.destroy();
  });

  it('stores each file as one object whose key is the file id', async () => {
    const f = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('key layout')])).json();
    const head = await bucket.client.send(new HeadObjectCommand({ Bucket: bucket.config().bucket, Key: f.id }));
    expect(head.ContentLength).toBe(10);
  });

  it('streams 200 MiB up and down through the HTTP API with equal sha256', { timeout: 180_000 }, async () => {
    const size = 200 * MiB;
    const source = deterministicStream(size);
    const up = await streamingUpload(`${gw.url}/v1/files`, source.stream, 'big.bin');
    expect(up.status).toBe(200);
    expect(up.json.bytes).toBe(size);
    const down = await streamingDownload(`${gw.url}/v1/files/${up.json.id}/content`);
    expect(down).toEqual({ status: 200, bytes: size, sha256: await source.sha256 });
    // Every S3 call is counted, each multipart part on its own (5 MiB parts here).
    const samples = await scrape(gw.url);
    expect(
      sampleValue(samples, 'files_gateway_store_call_duration_seconds_count', {
        operation: 'UploadPartCommand',
        outcome: 'success',
      }),
    ).toBeGreaterThanOrEqual(40);
    expect(
      sampleValue(samples, 'files_gateway_store_call_duration_seconds_count', {
        operation: 'CompleteMultipartUploadCommand',
        outcome: 'success',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sampleValue(samples, 'files_gateway_store_call_duration_seconds_count', {
        operation: 'GetObjectCommand',
        outcome: 'success',
      }),
    ).toBeGreaterThanOrEqual(1);
    await request(`${gw.url}/v1/files/${up.json.id}`, { method: 'DELETE' });
  });

  it('stores a small file in one PutObject, its metadata along, whichever order the fields came in', async () => {
    const calls = async (operation: string) =>
      sampleValue(await scrape(gw.url), 'files_gateway_store_call_duration_seconds_count', {
        operation,
        outcome: 'success',
      });
    const operations = ['PutObjectCommand', 'PutObjectTaggingCommand', 'HeadObjectCommand'];
    const before = await Promise.all(operations.map(calls));
    // file first, as openai-node and `curl -F file=@… -F purpose=…` send it
    const f = (
      await upload(gw.url, [filePart('fields after the file', 'late.txt'), { name: 'purpose', value: 'batch' }])
    ).json();
    const after = await Promise.all(operations.map(calls));
    expect(after.map((n, i) => n - before[i]!)).toEqual([1, 0, 0]);
    const head = await bucket.client.send(new HeadObjectCommand({ Bucket: bucket.config().bucket, Key: f.id }));
    expect(head.Metadata).toMatchObject({ purpose: 'batch' });
    expect((await request(`${gw.url}/v1/files/${f.id}/content`)).body.toString()).toBe('fields after the file');
  });

  it('drops the row of a file whose object was deleted behind its back, answering 404', async () => {
    const f = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('doomed')])).json();
    await bucket.client.send(new DeleteObjectCommand({ Bucket: bucket.config().bucket, Key: f.id }));
    const content = await request(`${gw.url}/v1/files/${f.id}/content`);
    expect(content.status).toBe(404);
    expect(content.json().error.message).toContain('not found');
    expect((await request(`${gw.url}/v1/files/${f.id}`)).status).toBe(404);
    expect((await request(`${gw.url}/v1/files`)).json().data.map((x: any) => x.id)).not.toContain(f.id);
  });

  it('deletes on a versioned bucket: a delete marker, and the file is gone from the API', async () => {
    const versioned = await createTestBucket({ label: 'ver', versioning: true });
    const vgw = await startGateway({ s3: versioned.config() });
    try {
      const f = (await upload(vgw.url, [filePart('versioned'), { name: 'purpose', value: 'batch' }])).json();
      expect((await request(`${vgw.url}/v1/files/${f.id}/content`)).body.toString()).toBe('versioned');
      expect((await request(`${vgw.url}/v1/files/${f.id}`, { method: 'DELETE' })).json().deleted).toBe(true);
      const versions = await versioned.client.send(
        new ListObjectVersionsCommand({ Bucket: versioned.config().bucket, Prefix: f.id }),
      );
      expect(versions.DeleteMarkers?.map((m) => m.Key)).toEqual([f.id]);
      expect((await request(`${vgw.url}/v1/files/${f.id}/content`)).status).toBe(404);
      expect((await request(`${vgw.url}/v1/files/${f.id}`, { method: 'DELETE' })).status).toBe(404);
    } finally {
      await vgw.close();
      await versioned.destroy();
    }
  });

  it('reindex rebuilds a wiped catalog from the bucket alone, whichever order the fields came in', async () => {
    const prefix = `reindex-${randomBytes(3).toString('hex')}/`;
    const rgw = await startGateway({ s3: bucket.config({ prefix }) });
    const uploaded = [
      // purpose first: metadata travels with the bytes (user metadata)
      (await upload(rgw.url, [{ name: 'purpose', value: 'assistants' }, filePart('one', 'ünïcödé 📄 "q".txt')])).json(),
      // file first (openai-node): metadata follows as object tags
      (await upload(rgw.url, [filePart('two', 'b.jsonl'), { name: 'purpose', value: 'batch' }])).json(),
      (
        await upload(rgw.url, [
          filePart('three', 'c.txt'),
          { name: 'purpose', value: 'user_data' },
          { name: 'expires_after', value: '{"anchor":"created_at","seconds":7200}' },
        ])
      ).json(),
    ];
    await rgw.close();

    const store = new S3BlobStore(bucket.config({ prefix }));
    const catalog = new SqliteCatalog(path.join(await tempDir(), 'fresh.sqlite'));
    await catalog.init();
    try {
      const progress: number[] = [];
      expect(await reindex(store, catalog, (n) => progress.push(n))).toBe(3);
      expect(progress.at(-1)).toBe(3);
      expect(await reindex(store, catalog)).toBe(3);
      const rows = await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0 });
      const asWire = rows.map((r) => ({
        id: r.id,
        filename: r.filename,
        purpose: r.purpose,
        bytes: r.bytes,
        created_at: r.createdAt,
        expires_at: r.expiresAt,
      }));
      const expected = uploaded.map((f) => ({
        id: f.id,
        filename: f.filename,
        purpose: f.purpose,
        bytes: f.bytes,
        created_at: f.created_at,
        expires_at: f.expires_at,
      }));
      const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);
      expect(asWire.sort(byId)).toEqual(expected.sort(byId));
    } finally {
      await catalog.close();
      await store.close();
    }
  });
});
