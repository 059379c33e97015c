/** What only the S3 store has: big streamed objects, versioning, bucket checks, failure translation. */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  DeleteBucketCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobNotFoundError, GatewayError } from '../../src/errors.js';
import type { BlobMeta } from '../../src/storage/blob-store.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { collect, deterministicStream, sha256Of } from '../helpers/bytes.js';
import {
  createTestBucket,
  MiB,
  rawClient,
  s3Config,
  s3Server,
  uniqueBucketName,
  type TestBucket,
} from '../helpers/s3.js';
import { newFileId } from '../../src/files/ids.js';

const server = s3Server();
const rgwOnly = server.backend === 'rgw' ? it : it.skip;
/** Blob ids are file ids as the gateway mints them. */
const fileId = (): string => newFileId(Date.now());
const meta: BlobMeta = {
  tenant: '',
  filename: 'a.txt',
  purpose: 'assistants',
  createdAt: 1_750_000_000,
  expiresAt: null,
  bytes: 0,
};

async function listAll(store: S3BlobStore): Promise<Map<string, BlobMeta>> {
  const all = new Map<string, BlobMeta>();
  for await (const { id, meta: m } of store.list()) all.set(id, m);
  return all;
}

/** A loopback port with nothing listening. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe('S3BlobStore', () => {
  let bucket: TestBucket;
  let store: S3BlobStore;
  beforeAll(async () => {
    bucket = await createTestBucket({ label: 's3store' });
    // the production defaults: 8 MiB parts, 4 in flight
    store = new S3BlobStore(bucket.config({ partSizeBytes: 8 * MiB, queueSize: 4 }));
    await store.init();
  });
  afterAll(async () => {
    await store?.close();
    await bucket?.destroy();
  });

  it('names itself without credentials', () => {
    expect(store.kind).toBe('s3');
    expect(store.location).toBe(`s3://${bucket.config().bucket}/ @ ${server.endpoint}`);
    expect(store.location).not.toContain(server.secretAccessKey);
  });

  it('streams 200 MiB up and down without holding it, bytes intact', async () => {
    const size = 200 * MiB;
    const id = fileId();
    const source = deterministicStream(size, 'big');
    const put = await store.put(id, source.stream);
    expect(put.size).toBe(size);
    // the multipart ETag from HeadObject ("md5-25"), not Ceph's empty CompleteMultipartUpload one
    if (server.backend === 'rgw') expect(put.etag).toMatch(/^"[0-9a-f]{32}-25"$/);
    const read = await store.get(id);
    expect(read.size).toBe(size);
    expect(await sha256Of(read.stream)).toBe(await source.sha256);
    await store.delete(id);
  }, 180_000);

  it('lists only file ids under its prefix, and only objects carrying metadata', async () => {
    const prefixed = new S3BlobStore(bucket.config({ prefix: 'listing/' }));
    const mine = fileId();
    await prefixed.put(mine, Readable.from([Buffer.from('x')]), meta);
    const put = (Key: string) =>
      bucket.client.send(
        new PutObjectCommand({
          Bucket: bucket.config().bucket,
          Key,
          Body: 'y',
          Metadata: { 'filename-b64': 'eQ', purpose: 'assistants', 'created-at': '1' },
        }),
      );
    await put('listing/notes.txt'); // not a file id
    await put(`listing/nested/${fileId()}`); // deeper than the prefix
    await put(fileId()); // outside the prefix
    await prefixed.put(fileId(), Readable.from([Buffer.from('no meta')])); // no metadata in either form
    expect([...(await listAll(prefixed)).keys()]).toEqual([mine]);
    await prefixed.close();
  });

  it('stores late metadata as at most 10 tags, even for a 1024-byte all-emoji filename', async () => {
    const id = fileId();
    await store.put(id, Readable.from([Buffer.from('tags')]));
    const filename = '😀'.repeat(256); // 1024 UTF-8 bytes
    await store.putMeta(id, { ...meta, filename, expiresAt: 1_750_003_600 });
    const tags = await bucket.client.send(new GetObjectTaggingCommand({ Bucket: bucket.config().bucket, Key: id }));
    expect(tags.TagSet!.length).toBeLessThanOrEqual(10);
    expect((await listAll(store)).get(id)?.filename).toBe(filename);
    await store.delete(id);
  });

  it('reads a range of a multipart object across a part boundary', async () => {
    const id = fileId();
    const source = deterministicStream(17 * MiB, 'parts');
    const all = await collect(deterministicStream(17 * MiB, 'parts').stream);
    await store.put(id, source.stream);
    const range = { start: 8 * MiB - 10, end: 8 * MiB + 9 };
    const read = await store.get(id, range);
    expect(read.size).toBe(17 * MiB);
    expect((await collect(read.stream)).equals(all.subarray(range.start, range.end + 1))).toBe(true);
    await store.delete(id);
  });
});

describe('S3BlobStore on a versioned bucket', () => {
  let bucket: TestBucket;
  beforeAll(async () => {
    bucket = await createTestBucket({ versioning: true, label: 'versioned' });
  }, 120_000);
  afterAll(async () => {
    await bucket?.destroy();
  });

  rgwOnly('delete leaves a delete marker and the blob is gone', async () => {
    const store = new S3BlobStore(bucket.config());
    await store.init();
    const id = fileId();
    await store.put(id, Readable.from([Buffer.from('v1')]), meta);
    await store.putMeta(id, { ...meta, filename: 'b.txt' });
    await store.delete(id);
    await expect(store.get(id)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.stat(id)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect((await listAll(store)).has(id)).toBe(false);
    await expect(store.delete(id)).resolves.toBeUndefined();
    const versions = await bucket.client.send(
      new ListObjectVersionsCommand({ Bucket: bucket.config().bucket, Prefix: id }),
    );
    expect(versions.Versions).toHaveLength(1);
    expect(versions.DeleteMarkers?.length).toBeGreaterThanOrEqual(1);
    await store.close();
  });
});

describe('S3BlobStore.init', () => {
  it('names the bucket and endpoint when the bucket is missing', async () => {
    const name = uniqueBucketName('missing');
    const store = new S3BlobStore(s3Config(server, name));
    await expect(store.init()).rejects.toThrow(new Error(`bucket ${name} not found at endpoint ${server.endpoint}`));
    await store.close();
  });

  it('creates a missing bucket when asked to, and accepts it existing next time', async () => {
    const name = uniqueBucketName('autocreate');
    const store = new S3BlobStore(s3Config(server, name, { autoCreateBucket: true }));
    await store.init();
    await store.init();
    const raw = rawClient(server);
    await expect(raw.send(new HeadBucketCommand({ Bucket: name }))).resolves.toBeDefined();
    await raw.send(new DeleteBucketCommand({ Bucket: name }));
    raw.destroy();
    await store.close();
  });

  rgwOnly('with a wrong secret names the endpoint and access key id, never the secret', async () => {
    const bucket = await createTestBucket({ label: 'auth' });
    const secret = `wrong-${randomBytes(12).toString('hex')}`;
    const store = new S3BlobStore(
      bucket.config({ credentials: { accessKeyId: server.accessKeyId, secretAccessKey: secret } }),
    );
    const err = await store.init().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toContain(server.endpoint);
    expect(err!.message).toContain(server.accessKeyId);
    expect(inspect(err, { depth: 10 })).not.toContain(secret);
    // and a request failing the same way at run time does not leak it either
    const getErr = await store.get(fileId()).catch((e: unknown) => e);
    expect(inspect(getErr, { depth: 10 })).not.toContain(secret);
    await store.close();
    await bucket.destroy();
  });

  rgwOnly('with an unknown access key id names that key', async () => {
    const store = new S3BlobStore(
      s3Config(server, uniqueBucketName('auth'), {
        credentials: { accessKeyId: 'NOSUCHKEY00000000000', secretAccessKey: 'x' },
      }),
    );
    await expect(store.init()).rejects.toThrow(/NOSUCHKEY00000000000/);
    await store.close();
  });
});

describe('S3BlobStore when S3 says the transfer broke', () => {
  /** Starts multipart uploads, then answers every part with `code` (400), as a server going down mid-request can. */
  async function refusingParts(code: string): Promise<{ endpoint: string; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://s3');
        if (req.method === 'POST' && url.searchParams.has('uploads')) {
          res.setHeader('content-type', 'application/xml');
          res.end('<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>');
        } else if (req.method === 'PUT' && url.searchParams.has('partNumber')) {
          res.statusCode = 400;
          res.setHeader('content-type', 'application/xml');
          res.end(`<Error><Code>${code}</Code><Message>broken</Message></Error>`);
        } else {
          res.statusCode = 204;
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    return {
      endpoint: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it.each(['IncompleteBody', 'RequestTimeout'])('put fails with a 503 GatewayError on %s', async (code) => {
    const s3 = await refusingParts(code);
    const store = new S3BlobStore({ ...s3Config(server, 'anything'), endpoint: s3.endpoint });
    try {
      const body = deterministicStream(12 * MiB).stream;
      const err = await store.put(fileId(), body).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).status).toBe(503);
      expect(body.destroyed).toBe(true);
    } finally {
      await store.close();
      await s3.close();
    }
  });
});

describe('S3BlobStore with the endpoint unreachable', () => {
  let store: S3BlobStore;
  let endpoint: string;
  beforeAll(async () => {
    endpoint = `http://127.0.0.1:${await closedPort()}`;
    store = new S3BlobStore({ ...s3Config(server, 'anything'), endpoint });
  });
  afterAll(async () => {
    await store.close();
  });

  it('init says the endpoint cannot be reached', async () => {
    await expect(store.init()).rejects.toThrow(`S3 endpoint ${endpoint} cannot be reached`);
  });

  it.each(['get', 'stat', 'delete', 'putMeta'] as const)('%s fails with a 503 GatewayError', async (op) => {
    const call = op === 'putMeta' ? store.putMeta(fileId(), meta) : store[op](fileId());
    const err = await (call as Promise<unknown>).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(503);
  });

  it('put fails with a 503 GatewayError and releases the body', async () => {
    const body = deterministicStream(MiB).stream;
    const err = await store.put(fileId(), body).catch((e: unknown) => e);
    expect((err as GatewayError).status).toBe(503);
    expect(body.destroyed).toBe(true);
  });

  it('list fails with a 503 GatewayError', async () => {
    const err = await listAll(store).catch((e: unknown) => e);
    expect((err as GatewayError).status).toBe(503);
  });
});
