/** The S3 store's own part uploader: pooled buffers, sends capped across uploads, payload signing. */
import { Readable } from 'node:stream';
import { GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartBuffers, sendUnsignedPayloads, uploadStream } from '../../src/storage/s3-stream-upload.js';
import { deterministicStream, sha256Of } from '../helpers/bytes.js';
import { createTestBucket, MiB, rawClient, type TestBucket } from '../helpers/s3.js';

describe('PartBuffers', () => {
  it('hands back the buffers it was given before allocating new ones', () => {
    const buffers = new PartBuffers(1024, 2);
    const a = buffers.take();
    buffers.give(a);
    expect(buffers.take()).toBe(a);
    expect(buffers.take()).not.toBe(a);
  });

  it('drops idle buffers after a quiet spell', async () => {
    const buffers = new PartBuffers(1024, 2, 50);
    const a = buffers.take();
    buffers.give(a);
    await new Promise((r) => setTimeout(r, 120));
    expect(buffers.take()).not.toBe(a);
  });

  it('gives turns to send first come first served, never more than its cap at once', async () => {
    const buffers = new PartBuffers(1024, 2);
    const order: number[] = [];
    const first = await buffers.sendTurn();
    const second = await buffers.sendTurn();
    const waiting = [3, 4].map((n) =>
      buffers.sendTurn().then((done) => {
        order.push(n);
        return done;
      }),
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    first();
    first(); // a second call must not free a second turn
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([3]);
    second();
    const [third, fourth] = await Promise.all(waiting);
    expect(order).toEqual([3, 4]);
    third?.();
    fourth?.();
    const again = await buffers.sendTurn();
    again();
  });
});

/** Records, per request, the payload hash it was signed with and how many parts were in flight. */
function recording(client: S3Client): { hashes: Map<string, string[]>; maxParts: () => number } {
  const hashes = new Map<string, string[]>();
  let parts = 0;
  let maxParts = 0;
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? '';
      const headers = (args.request as { headers: Record<string, string> }).headers;
      hashes.set(name, [...(hashes.get(name) ?? []), headers['x-amz-content-sha256'] ?? '']);
      if (name !== 'UploadPartCommand') return next(args);
      maxParts = Math.max(maxParts, ++parts);
      try {
        return await next(args);
      } finally {
        parts--;
      }
    },
    // after signing: what went on the wire
    { step: 'finalizeRequest', priority: 'low', name: 'record' },
  );
  return { hashes, maxParts: () => maxParts };
}

describe('uploadStream against S3', () => {
  let bucket: TestBucket;
  beforeAll(async () => {
    bucket = await createTestBucket({ label: 'streamup' });
  });
  afterAll(async () => {
    await bucket?.destroy();
  });

  const target = (Key: string) => ({ Bucket: bucket.config().bucket, Key, ContentType: 'application/octet-stream' });
  const read = async (client: S3Client, Key: string) =>
    sha256Of((await client.send(new GetObjectCommand(target(Key)))).Body as Readable);

  it('keeps sends across uploads within the cap, and every upload whole', async () => {
    const client = rawClient(bucket.server);
    const { maxParts } = recording(client);
    const buffers = new PartBuffers(5 * MiB, 2);
    const sizes = [23 * MiB, 17 * MiB + 5, 11 * MiB];
    const bodies = sizes.map((size, i) => deterministicStream(size, `capped-${i}`));
    const written = await Promise.all(
      bodies.map(({ stream }, i) => uploadStream(client, target(`capped-${i}`), stream, { buffers, queueSize: 4 })),
    );
    expect(written.map((w) => w.size)).toEqual(sizes);
    expect(maxParts()).toBe(2);
    for (const [i, body] of bodies.entries()) expect(await read(client, `capped-${i}`)).toBe(await body.sha256);
  });

  it('sends a small body in one PutObject without taking a part buffer', async () => {
    const client = rawClient(bucket.server);
    const { hashes } = recording(client);
    const buffers = new PartBuffers(5 * MiB, 2);
    let taken = 0;
    const take = buffers.take.bind(buffers);
    buffers.take = () => {
      taken++;
      return take();
    };
    const body = deterministicStream(1024 * 1024, 'small');
    expect(await uploadStream(client, target('small'), body.stream, { buffers, queueSize: 4 })).toMatchObject({
      size: 1024 * 1024,
    });
    expect(taken).toBe(0);
    expect([...hashes.keys()]).toEqual(['PutObjectCommand']);
    expect(await read(client, 'small')).toBe(await body.sha256);
  });

  it('sends a body of exactly one part in one PutObject, with metadata that came after it', async () => {
    const client = rawClient(bucket.server);
    const { hashes } = recording(client);
    const buffers = new PartBuffers(5 * MiB, 2);
    const body = deterministicStream(5 * MiB, 'one part');
    const written = await uploadStream(client, target('one-part'), body.stream, {
      buffers,
      queueSize: 4,
      lateMetadata: async () => ({ purpose: 'batch' }),
    });
    expect(written).toMatchObject({ size: 5 * MiB, lateMetadataStored: true });
    expect([...hashes.keys()]).toEqual(['PutObjectCommand']);
    expect(await read(client, 'one-part')).toBe(await body.sha256);
  });

  it("fails with the body's error and leaves no multipart upload when the body breaks", async () => {
    const client = rawClient(bucket.server);
    const buffers = new PartBuffers(5 * MiB, 1);
    const cut = new Error('client went away');
    const piece = Buffer.alloc(MiB, 1);
    // past two parts: one has gone, the next waits for its turn or is being sent
    const body = Readable.from(
      (async function* () {
        for (let i = 0; i < 11; i++) yield piece;
        throw cut;
      })(),
      { objectMode: false },
    );
    await expect(uploadStream(client, target('broken'), body, { buffers, queueSize: 1 })).rejects.toBe(cut);
    const open = await client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket.config().bucket, Prefix: 'broken' }),
    );
    expect(open.Uploads ?? []).toEqual([]);
  });

  it('stops reading the body and rejects when S3 refuses the upload', async () => {
    const client = rawClient(bucket.server);
    const body = deterministicStream(32 * MiB, 'refused').stream;
    const missing = { ...target('refused'), Bucket: `${bucket.config().bucket}-missing` };
    await expect(
      uploadStream(client, missing, body, { buffers: new PartBuffers(5 * MiB, 2), queueSize: 2 }),
    ).rejects.toMatchObject({ name: 'NoSuchBucket' });
    expect(body.destroyed).toBe(true);
  });

  it('signs each part with its SHA-256 unless told to send it unsigned', async () => {
    const signed = rawClient(bucket.server);
    const unsigned = rawClient(bucket.server);
    sendUnsignedPayloads(unsigned);
    const seen = { signed: recording(signed).hashes, unsigned: recording(unsigned).hashes };
    const buffers = new PartBuffers(5 * MiB, 4);
    for (const [name, client] of [
      ['signed', signed],
      ['unsigned', unsigned],
    ] as const) {
      const big = deterministicStream(12 * MiB, name);
      await uploadStream(client, target(`${name}-big`), big.stream, { buffers, queueSize: 4 });
      const small = await uploadStream(client, target(`${name}-small`), Readable.from([Buffer.from('small')]), {
        buffers,
        queueSize: 4,
      });
      expect(small).toMatchObject({ size: 5, etag: expect.stringMatching(/^"[0-9a-f]{32}"$/) });
      expect(await read(client, `${name}-big`)).toBe(await big.sha256);
      expect(await read(client, `${name}-small`)).toBe(await sha256Of(Readable.from([Buffer.from('small')])));
    }
    const hex = /^[0-9a-f]{64}$/;
    for (const command of ['UploadPartCommand', 'PutObjectCommand']) {
      expect(seen.signed.get(command)?.every((h) => hex.test(h))).toBe(true);
      expect(seen.unsigned.get(command)?.every((h) => h === 'UNSIGNED-PAYLOAD')).toBe(true);
    }
    expect(seen.unsigned.get('UploadPartCommand')).toHaveLength(3);
  });
});
