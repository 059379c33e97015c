/**
 * The BlobStore contract (invariant 7): every implementation runs this one suite.
 * Each test gets a fresh, empty store from the factory.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { BlobNotFoundError, ChecksumMismatchError } from '../../src/errors.js';
import type { BlobMeta, BlobStore } from '../../src/storage/blob-store.js';
import { collect, deterministicBytes, failingStream, piecesOf } from '../helpers/bytes.js';
import { newFileId } from '../../src/files/ids.js';

export interface ContractSubject {
  store: BlobStore;
  /** Multipart uploads still open, where the backend has them (S3): must be 0 after a failed put. */
  pendingUploads?: () => Promise<number>;
  /** Bytes after which a put has really started a multipart upload (over one part); default 1 MiB. */
  moreThanOnePart?: number;
  /** s3rver (local fallback only) answers `bytes=0-0` with the whole object: that case is skipped. */
  firstByteRangeBroken?: boolean;
  /** Temp files of unfinished writes, where the store keeps them (fs). */
  tempFiles?: () => Promise<number>;
  cleanup?: () => Promise<void>;
}

const MiB = 1024 * 1024;
const body = (bytes: Buffer): Readable => Readable.from([bytes]);
/** Ids shaped like the domain's (file- + 32 hex), which is what the S3 store lists. */
/** Blob ids are file ids as the gateway mints them. */
const id = (): string => newFileId(Date.now());

async function listAll(store: BlobStore): Promise<Map<string, BlobMeta>> {
  const all = new Map<string, BlobMeta>();
  for await (const { id: key, meta } of store.list()) all.set(key, meta);
  return all;
}

/** Exactly 1024 UTF-8 bytes: emoji, quotes, CJK, path and URL characters, then ASCII padding. */
function longName(): string {
  const head = `"quoted" 'single' 😀🧪👩‍💻 中文字 é ü ß \\ / % + = & ? # ; ,`;
  const name = head + 'x'.repeat(1024 - Buffer.byteLength(head));
  expect(Buffer.byteLength(name)).toBe(1024);
  return name;
}

export function blobStoreContract(name: string, factory: () => Promise<ContractSubject>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: BlobStore;

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
      await store.init();
    });
    afterEach(async () => {
      await store.close();
      await subject.cleanup?.();
    });

    describe('put and get', () => {
      const cases: [string, () => Promise<Buffer>][] = [
        ['0 bytes', async () => Buffer.alloc(0)],
        ['all 256 byte values', async () => Buffer.from(Array.from({ length: 256 }, (_, i) => i))],
        ['3 MiB + 1 byte', () => deterministicBytes(3 * MiB + 1)],
      ];
      it.each(cases)('round-trips %s', async (_label, make) => {
        const bytes = await make();
        const key = id();
        const put = await store.put(key, body(bytes));
        expect(put.size).toBe(bytes.length);
        const read = await store.get(key);
        expect(read.size).toBe(bytes.length);
        expect((await collect(read.stream)).equals(bytes)).toBe(true);
        expect(read.etag).toBe(put.etag);
      });

      it('streams a body that arrives in many small chunks', async () => {
        const bytes = await deterministicBytes(MiB + 7);
        const chunks = piecesOf(bytes, 1000);
        const key = id();
        await store.put(key, Readable.from(chunks));
        expect((await collect((await store.get(key)).stream)).equals(bytes)).toBe(true);
      });
    });

    describe('ranged get', () => {
      let bytes: Buffer;
      let key: string;
      beforeEach(async () => {
        bytes = await deterministicBytes(100_000);
        key = id();
        await store.put(key, body(bytes));
      });

      const ranges: [string, (size: number) => { start: number; end: number }][] = [
        ['first byte', () => ({ start: 0, end: 0 })],
        ['a middle slice', () => ({ start: 40_000, end: 59_999 })],
        ['last byte', (size) => ({ start: size - 1, end: size - 1 })],
        ['a suffix (last 500 bytes, computed by the caller)', (size) => ({ start: size - 500, end: size - 1 })],
        ['the whole blob as a range', (size) => ({ start: 0, end: size - 1 })],
      ];
      it.for(ranges)('reads %s and reports the whole size', async ([label, range], { skip }) => {
        if (label === 'first byte' && subject.firstByteRangeBroken) skip();
        const r = range(bytes.length);
        const read = await store.get(key, r);
        expect(read.size).toBe(bytes.length);
        expect((await collect(read.stream)).equals(bytes.subarray(r.start, r.end + 1))).toBe(true);
        expect(read.etag).toBe((await store.stat(key)).etag);
      });
    });

    describe('stat', () => {
      it('gives the size and an etag that stays the same while the blob does', async () => {
        const key = id();
        const put = await store.put(key, body(Buffer.from('hello')));
        const first = await store.stat(key);
        const second = await store.stat(key);
        expect(first).toEqual({ size: 5, etag: put.etag });
        expect(second.etag).toBe(first.etag);
        expect(first.etag).not.toBe('');
      });

      it('throws BlobNotFoundError for a blob that never existed', async () => {
        await expect(store.stat(id())).rejects.toBeInstanceOf(BlobNotFoundError);
        await expect(store.get(id())).rejects.toBeInstanceOf(BlobNotFoundError);
      });
    });

    describe('metadata for rebuilding the catalog', () => {
      const meta = (filename: string, overrides: Partial<BlobMeta> = {}): BlobMeta => ({
        tenant: '',
        filename,
        purpose: 'assistants',
        createdAt: 1_750_000_000,
        expiresAt: null,
        bytes: 0,
        ...overrides,
      });
      const names: [string, string][] = [
        ['plain', 'report.pdf'],
        ['empty', ''],
        ['emoji and quotes', `résumé "final" 'v2' 😀🧪.txt`],
        ['1024 UTF-8 bytes', longName()],
      ];

      it.each(names)('meta passed to put round-trips through list(): %s filename', async (_label, filename) => {
        const key = id();
        // A named tenant of the longest allowed name travels with the rest (tenancy survives reindex).
        const m = meta(filename, {
          purpose: 'user_data',
          expiresAt: 1_750_086_400,
          tenant: `team-${'a'.repeat(54)}.x:@`,
        });
        await store.put(key, body(Buffer.from('abc')), m);
        expect((await listAll(store)).get(key)).toEqual({ ...m, bytes: 3 });
      });

      it.each(names)('putMeta after put round-trips through list(): %s filename', async (_label, filename) => {
        const key = id();
        await store.put(key, body(Buffer.from('abcd')));
        const m = meta(filename, {
          purpose: 'fine-tune',
          tenant: `team-${'b'.repeat(54)}.y:@`,
          expiresAt: 1_750_086_400,
        });
        await store.putMeta(key, m);
        expect((await listAll(store)).get(key)).toEqual({ ...m, bytes: 4 });
      });

      it.each([
        ['a small body', 3],
        ['a body over one part', 12 * MiB + 3],
      ])('metadata that comes after %s is stored by put, or says putMeta must follow', async (_label, size) => {
        const key = id();
        const bytes = await deterministicBytes(size);
        let settle!: (m: BlobMeta | undefined) => void;
        const late = new Promise<BlobMeta | undefined>((resolve) => (settle = resolve));
        const m = meta('late.txt', { purpose: 'batch' });
        const source = body(bytes);
        // the metadata is known only once the body has been read to its end
        source.once('end', () => setTimeout(() => settle(m), 20));
        const put = await store.put(key, source, late);
        expect(put.size).toBe(size);
        if (!put.metaStored) await store.putMeta(key, m);
        expect((await listAll(store)).get(key)).toEqual({ ...m, bytes: size });
        expect((await collect((await store.get(key)).stream)).equals(bytes)).toBe(true);
      });

      it('stores a blob without metadata when the promised metadata never comes', async () => {
        const key = id();
        const put = await store.put(key, body(Buffer.from('abc')), Promise.resolve(undefined));
        expect(put.metaStored).toBe(false);
        expect((await collect((await store.get(key)).stream)).toString()).toBe('abc');
        expect((await listAll(store)).has(key)).toBe(false);
      });

      it('putMeta replaces the metadata given to put', async () => {
        const key = id();
        await store.put(key, body(Buffer.from('x')), meta('old.txt'));
        const m = meta('new.txt', { purpose: 'batch', expiresAt: 1_750_003_600 });
        await store.putMeta(key, m);
        expect((await listAll(store)).get(key)).toEqual({ ...m, bytes: 1 });
      });

      it('list() yields every blob with metadata and skips blobs without', async () => {
        const withMeta = [id(), id(), id()];
        const bare = id();
        for (const key of withMeta) await store.put(key, body(Buffer.from(key)), meta(`${key}.txt`));
        await store.put(bare, body(Buffer.from('no metadata yet')));
        const all = await listAll(store);
        expect([...all.keys()].sort()).toEqual([...withMeta].sort());
        for (const key of withMeta) expect(all.get(key)?.filename).toBe(`${key}.txt`);
      });
    });

    describe('delete', () => {
      it('removes the bytes and the metadata', async () => {
        const key = id();
        await store.put(key, body(Buffer.from('bye')), {
          tenant: '',
          filename: 'bye.txt',
          purpose: 'assistants',
          createdAt: 1,
          expiresAt: null,
          bytes: 3,
        });
        await store.delete(key);
        await expect(store.get(key)).rejects.toBeInstanceOf(BlobNotFoundError);
        await expect(store.stat(key)).rejects.toBeInstanceOf(BlobNotFoundError);
        expect((await listAll(store)).has(key)).toBe(false);
      });

      it('is fine with a blob that does not exist', async () => {
        await expect(store.delete(id())).resolves.toBeUndefined();
      });
    });

    describe('upload parts', () => {
      const uploadId = () => `upload_${randomBytes(16).toString('hex')}`;
      const meta: BlobMeta = {
        tenant: '',
        filename: 'parts.bin',
        purpose: 'batch',
        createdAt: 1_750_000_000,
        expiresAt: null,
        bytes: 0,
      };
      const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
      // big and small parts, so S3 both copies server-side and coalesces small parts into one 5 MiB part
      const sizes = [6 * MiB, 3 * MiB, 6 * MiB, 1024, 0, 2 * MiB];

      async function storeParts(upload: string): Promise<{ refs: { id: string; bytes: number }[]; whole: Buffer }> {
        const datas = await Promise.all(sizes.map((size, i) => deterministicBytes(size, `part-${i}`)));
        const refs = datas.map((d, i) => ({ id: `part_${i}`, bytes: d.length }));
        // stored out of order, all at once
        await Promise.all(
          [...refs.entries()]
            .reverse()
            .map(async ([i, ref]) =>
              expect(await store.parts!.putPart(upload, ref.id, body(datas[i]!))).toBe(ref.bytes),
            ),
        );
        return { refs, whole: Buffer.concat(datas) };
      }

      it('assembles parts in the given order into a listed blob with metadata; parts are never listed', async () => {
        const upload = uploadId();
        const { refs, whole } = await storeParts(upload);
        const key = id();
        const stat = await store.parts!.assemble(key, upload, refs, { ...meta, bytes: whole.length }, md5(whole));
        expect(stat.size).toBe(whole.length);
        expect(stat.etag).toBe((await store.stat(key)).etag);
        expect((await collect((await store.get(key)).stream)).equals(whole)).toBe(true);
        expect([...(await listAll(store)).entries()]).toEqual([[key, { ...meta, bytes: whole.length }]]);
        // another order of the same parts is another file
        const reordered = [refs[3]!, refs[0]!, refs[5]!];
        const other = id();
        await store.parts!.assemble(other, upload, reordered, meta);
        const expected = Buffer.concat([
          whole.subarray(15 * MiB, 15 * MiB + 1024),
          whole.subarray(0, 6 * MiB),
          whole.subarray(whole.length - 2 * MiB),
        ]);
        expect((await collect((await store.get(other)).stream)).equals(expected)).toBe(true);
        await store.parts!.deleteParts(upload);
        await expect(store.parts!.assemble(id(), upload, refs, meta)).rejects.toBeDefined();
      });

      it('refuses an md5 mismatch before the blob becomes visible, keeping the parts', async () => {
        const upload = uploadId();
        const small = [Buffer.from('abc'), Buffer.from('def')];
        for (const [i, d] of small.entries()) await store.parts!.putPart(upload, `part_${i}`, body(d));
        const refs = small.map((d, i) => ({ id: `part_${i}`, bytes: d.length }));
        const big = uploadId();
        for (const [where, parts] of [
          [upload, refs],
          [big, (await storeParts(big)).refs],
        ] as const) {
          const key = id();
          const err = await store
            .parts!.assemble(key, where, parts, meta, md5(Buffer.from('something else')))
            .catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ChecksumMismatchError);
          await expect(store.stat(key)).rejects.toBeInstanceOf(BlobNotFoundError);
          expect((await listAll(store)).size).toBe(0);
          if (subject.pendingUploads) expect(await subject.pendingUploads()).toBe(0);
        }
        const key = id();
        await store.parts!.assemble(key, upload, refs, meta, md5(Buffer.from('abcdef')));
        expect((await collect((await store.get(key)).stream)).toString()).toBe('abcdef');
        await store.parts!.deleteParts(upload, ['part_0']);
        await expect(store.parts!.assemble(id(), upload, refs, meta)).rejects.toBeDefined();
        await store.parts!.assemble(id(), upload, [refs[1]!], meta);
      });

      it('leaves nothing of a part whose body fails', async () => {
        const upload = uploadId();
        const error = new Error('client went away');
        await expect(
          store.parts!.putPart(upload, 'part_x', failingStream(subject.moreThanOnePart ?? MiB, error)),
        ).rejects.toBe(error);
        await expect(store.parts!.assemble(id(), upload, [{ id: 'part_x', bytes: 1 }], meta)).rejects.toBeDefined();
        if (subject.pendingUploads) expect(await subject.pendingUploads()).toBe(0);
      });
    });

    describe('a body that fails mid-stream', () => {
      it('rejects with the body error and leaves nothing behind', async () => {
        const key = id();
        const error = new Error('client went away');
        const before = subject.moreThanOnePart ?? MiB;
        const pending = subject.pendingUploads;
        // Fail only once the store has really started writing (for S3: a multipart upload is open),
        // so the cleanup path is the one under test, not an upload that never began.
        const started = async (): Promise<void> => {
          if (!pending) return;
          for (let i = 0; i < 300 && (await pending()) === 0; i++) await new Promise((r) => setTimeout(r, 50));
          expect(await pending()).toBeGreaterThan(0);
        };
        const failing = failingStream(before, error, started);
        await expect(
          store.put(key, failing, {
            tenant: '',
            filename: 'f',
            purpose: 'assistants',
            createdAt: 1,
            expiresAt: null,
            bytes: 0,
          }),
        ).rejects.toBe(error);
        await expect(store.get(key)).rejects.toBeInstanceOf(BlobNotFoundError);
        expect((await listAll(store)).has(key)).toBe(false);
        if (pending) expect(await pending()).toBe(0);
      });

      it('leaves nothing behind when it fails before its first byte, many times over', async () => {
        // A body that fails at once can settle the write before the store has even created its
        // temp file; a race, so it is run many times, and checked again after the dust settles.
        const temps = subject.tempFiles ?? (async () => 0);
        for (let i = 0; i < 500; i++) {
          const error = new Error('client went away');
          const failing = new PassThrough();
          const put = store.put(id(), failing, {
            tenant: '',
            filename: 'f',
            purpose: 'assistants',
            createdAt: 1,
            expiresAt: null,
            bytes: 0,
          });
          failing.destroy(error);
          await expect(put).rejects.toBe(error);
          expect(await temps()).toBe(0);
        }
        await new Promise((r) => setTimeout(r, 100));
        expect(await temps()).toBe(0);
        expect(await listAll(store)).toEqual(new Map());
      });
    });
  });
}
