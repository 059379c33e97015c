import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { S3BlobStore } from '../../src/storage/s3-store.js';
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
    const store = new S3BlobStore(bucket.config({ prefix, partSizeBytes: 5 * MiB }));
    prefixes.set(store, prefix);
    return store;
  },
  // s3rver (local fallback only) cannot list multipart uploads (undefined); RGW always can.
  inProgress: (gw) => bucket.pendingUploads(prefixes.get(gw.store)),
});
