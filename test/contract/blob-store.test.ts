import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { createTestBucket, MiB, s3Server, type TestBucket } from '../helpers/s3.js';
import { blobStoreContract } from './blob-store.contract.js';

blobStoreContract('fs', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'files-gateway-fs-'));
  return {
    store: new FsBlobStore(dir),
    tempFiles: async () => (await readdir(path.join(dir, 'tmp'))).length,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

let bucket: TestBucket;
let n = 0;
beforeAll(async () => {
  bucket = await createTestBucket({ label: 'contract' });
});
afterAll(async () => {
  await bucket?.destroy();
});

// One bucket for the file, a fresh prefix per test: every test starts with an empty store, and the
// prefix handling is exercised on the way. Once with part bodies signed (plain HTTP's default), once
// sent as UNSIGNED-PAYLOAD (the default over HTTPS).
for (const signPayload of [true, false]) {
  blobStoreContract(`s3 on ${s3Server().backend}, ${signPayload ? 'signed' : 'unsigned'} payloads`, async () => {
    const prefix = `run-${++n}/`;
    const pending = bucket.pendingUploads;
    const canList = (await pending(prefix)) !== undefined;
    return {
      store: new S3BlobStore(bucket.config({ prefix, partSizeBytes: 5 * MiB, queueSize: 2, signPayload })),
      // more than two 5 MiB parts, so parts were uploaded before the body fails
      moreThanOnePart: 12 * MiB,
      ...(canList && { pendingUploads: async () => (await pending(prefix)) ?? 0 }),
      firstByteRangeBroken: bucket.server.backend === 's3rver',
    };
  });
}
