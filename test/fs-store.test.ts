import fsPromises, { mkdtemp, readdir, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FLUSH_EVERY_BYTES, MAX_BACKGROUND_FLUSHES, WRITE_BATCH_BYTES } from '../src/storage/batched-file-writer.js';
import { FsBlobStore } from '../src/storage/fs-store.js';
import { collect, deterministicBytes, piecesOf } from './helpers/bytes.js';
import { fileHandlePrototype, fileOf, fsError, openFilesUnder } from './helpers/file-handles.js';

/**
 * What the store asks of the disk under `dir`, in the order it completes: "write <file>",
 * "flush <file>" (fdatasync), "sync <folder>" (fsync of a folder) and "rename <from> -> <to>", with
 * paths relative to `dir` and temp names without their random suffix. The op named `slow`, if any,
 * takes 300 ms longer.
 */
async function recordDiskOps(dir: string, slow?: string): Promise<string[]> {
  const ops: string[] = [];
  const named = (file: string) => path.relative(dir, file).replace(/^(tmp\/.+)\.[0-9a-f]{12}$/, '$1') || '.';
  const proto = await fileHandlePrototype(dir);
  const record = <K extends 'writev' | 'datasync' | 'sync'>(method: K, verb: string) => {
    const original = proto[method] as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, method).mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      const file = named(fileOf(this));
      if (`${verb} ${file}` === slow) await sleep(300);
      const result = await original.apply(this, args);
      ops.push(`${verb} ${file}`);
      return result;
    } as never);
  };
  record('writev', 'write');
  record('datasync', 'flush');
  record('sync', 'sync');
  const rename = fsPromises.rename;
  vi.spyOn(fsPromises, 'rename').mockImplementation(async (from, to) => {
    await rename(from, to);
    ops.push(`rename ${named(String(from))} -> ${named(String(to))}`);
  });
  return ops;
}

const withoutWrites = (ops: string[]) => ops.filter((op) => !op.startsWith('write '));

/** Each of `ops` happened, each after the one before it. */
function expectInOrder(recorded: string[], ...ops: string[]): void {
  const at = ops.map((op) => recorded.indexOf(op));
  expect(
    at.every((i) => i >= 0),
    `missing from ${recorded.join(', ')}`,
  ).toBe(true);
  expect(at).toEqual([...at].sort((a, b) => a - b));
}

const contentOf = async (store: FsBlobStore, id: string) => collect((await store.get(id)).stream);

let dir: string;
let store: FsBlobStore;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'files-gateway-fs-store-'));
  store = new FsBlobStore(dir);
  await store.init();
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

describe('fs store writes', () => {
  it('writes a body that arrives in small pieces in batches of WRITE_BATCH_BYTES', async () => {
    const writev = vi.spyOn(await fileHandlePrototype(dir), 'writev');
    const bytes = await deterministicBytes(3 * WRITE_BATCH_BYTES + 1000);
    const pieces = piecesOf(bytes, 16_384);

    await store.put('file-batched', Readable.from(pieces));

    const writes = writev.mock.calls.map(([buffers]) => (buffers as Buffer[]).reduce((n, b) => n + b.length, 0));
    expect(writes.reduce((a, b) => a + b, 0)).toBe(bytes.length);
    // 193 pieces in 4 writes: every write but the last carries a full batch.
    expect(writes.length).toBe(4);
    for (const size of writes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(WRITE_BATCH_BYTES);
    expect((await contentOf(store, 'file-batched')).equals(bytes)).toBe(true);
  });

  it('writes a body of tiny pieces in batches of at most 1024 pieces (IOV_MAX)', async () => {
    const writev = vi.spyOn(await fileHandlePrototype(dir), 'writev');
    const bytes = await deterministicBytes(50_000);
    const pieces = piecesOf(bytes, 10);

    await store.put('file-tiny-pieces', Readable.from(pieces));

    const counts = writev.mock.calls.map(([buffers]) => (buffers as Buffer[]).length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(5000);
    expect(Math.max(...counts)).toBeLessThanOrEqual(1024);
    expect((await contentOf(store, 'file-tiny-pieces')).equals(bytes)).toBe(true);
  });

  it('writes the rest of a batch that a write took only part of', async () => {
    const proto = await fileHandlePrototype(dir);
    const original = proto.writev;
    // What libuv reports when a full disk stops a write part-way: the bytes it did write, no error.
    const writev = vi.spyOn(proto, 'writev').mockImplementationOnce(function (this: unknown, buffers: Buffer[]) {
      return original.call(this, [buffers[0]!.subarray(0, 1000)]);
    });
    const bytes = await deterministicBytes(WRITE_BATCH_BYTES + 5000);
    const pieces = piecesOf(bytes, 16_384);

    const put = await store.put('file-short-write', Readable.from(pieces));

    expect(put.size).toBe(bytes.length);
    expect((await contentOf(store, 'file-short-write')).equals(bytes)).toBe(true);
    expect(writev.mock.calls.length).toBeGreaterThan(2);
  });

  it('fails, leaving nothing behind, when a write takes no bytes at all', async () => {
    vi.spyOn(await fileHandlePrototype(dir), 'writev').mockImplementationOnce(async (buffers: Buffer[]) => ({
      bytesWritten: 0,
      buffers,
    }));
    await expect(store.put('file-stuck', Readable.from([await deterministicBytes(WRITE_BATCH_BYTES)]))).rejects.toThrow(
      'no bytes written',
    );
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expect(store.stat('file-stuck')).rejects.toThrow();
  });

  it('closes its file whether the body ends or fails', async () => {
    await store.put('file-complete', Readable.from([await deterministicBytes(WRITE_BATCH_BYTES + 10)]));
    const failing = new PassThrough();
    const put = store.put('file-failed', failing);
    failing.write(await deterministicBytes(WRITE_BATCH_BYTES + 10));
    setTimeout(() => failing.destroy(new Error('client went away')), 20);
    await expect(put).rejects.toThrow('client went away');
    await vi.waitFor(async () => expect(await openFilesUnder(dir)).toEqual([]));
  });

  it('destroys the body when its temp file cannot be created', async () => {
    await rm(path.join(dir, 'tmp'), { recursive: true });
    const body = new PassThrough();
    await expect(store.put('file-no-tmp', body)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(body.destroyed).toBe(true);
  });
});

describe('fs store durability', () => {
  const meta = {
    tenant: '',
    filename: 'a.txt',
    purpose: 'assistants',
    createdAt: 1_700_000_000,
    expiresAt: null,
    bytes: 5,
  };

  it('resolves a put only once its bytes, its sidecar, its new shard and both renames are on the disk', async () => {
    const ops = await recordDiskOps(dir);
    await store.put('file-ab', Readable.from([Buffer.from('hello')]), meta);
    ops.push('resolved');

    const renamedBytes = 'rename tmp/file-ab -> files/ab/file-ab';
    const renamedMeta = 'rename tmp/file-ab.meta -> files/ab/file-ab.meta.json';
    // The sidecar is flushed while the bytes arrive: the two flushes come in either order.
    expect(withoutWrites(ops).sort()).toEqual(
      [
        'flush tmp/file-ab',
        'flush tmp/file-ab.meta',
        'sync files',
        renamedMeta,
        renamedBytes,
        'sync files/ab',
        'resolved',
      ].sort(),
    );
    expectInOrder(ops, 'flush tmp/file-ab', 'sync files', renamedMeta, renamedBytes, 'sync files/ab', 'resolved');
    expectInOrder(ops, 'flush tmp/file-ab.meta', renamedMeta);
  });

  it('fails a put at once when its sidecar cannot be written, while the body is still arriving', async () => {
    const proto = await fileHandlePrototype(dir);
    const datasync = proto.datasync;
    vi.spyOn(proto, 'datasync').mockImplementation(async function (this: FileHandle) {
      if (fileOf(this).includes('.meta.')) throw fsError('ENOSPC', 'no space left on device');
      return datasync.call(this);
    });
    const body = new PassThrough();
    body.write(Buffer.from('the start of a body that never ends'));

    const put = store.put('file-no-sidecar', body, meta);
    const outcome = await Promise.race([
      put.then(
        () => 'stored',
        (err: Error) => err,
      ),
      sleep(2000).then(() => 'still waiting'),
    ]);

    expect(outcome).toMatchObject({ status: 503, code: 'insufficient_storage' });
    expect(body.destroyed).toBe(true);
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expect(store.stat('file-no-sidecar')).rejects.toThrow();
  });

  it('syncs a shard into files/ once, and a sidecar written after its bytes into the shard', async () => {
    await store.put('file-cd', Readable.from([Buffer.from('first')]));
    const ops = await recordDiskOps(dir);
    await store.put('file-xcd', Readable.from([Buffer.from('hello')]));
    await store.putMeta('file-xcd', meta);
    ops.push('resolved');

    expect(withoutWrites(ops)).toEqual([
      'flush tmp/file-xcd',
      'rename tmp/file-xcd -> files/cd/file-xcd',
      'sync files/cd',
      'flush tmp/file-xcd.meta',
      'rename tmp/file-xcd.meta -> files/cd/file-xcd.meta.json',
      'sync files/cd',
      'resolved',
    ]);
  });

  it('syncs a part and the folders made for it before putPart resolves', async () => {
    const ops = await recordDiskOps(dir);
    await store.putPart('upload-1', 'part-1', Readable.from([Buffer.from('part')]));
    ops.push('resolved');

    expect(withoutWrites(ops)).toEqual([
      'flush tmp/part-1',
      'sync uploads',
      'sync .',
      'rename tmp/part-1 -> uploads/upload-1/part-1',
      'sync uploads/upload-1',
      'resolved',
    ]);
  });

  it('has a new shard synced into files/ before any of the puts that made it at once resolves', async () => {
    const ops = await recordDiskOps(dir, 'sync files');
    await Promise.all(
      ['file-1ef', 'file-2ef', 'file-3ef'].map(async (id) => {
        await store.put(id, Readable.from([Buffer.from(id)]));
        ops.push(`resolved ${id}`);
      }),
    );

    expect(ops.filter((op) => op === 'sync files')).toHaveLength(1);
    expect(ops.findIndex((op) => op.startsWith('resolved'))).toBeGreaterThan(ops.indexOf('sync files'));
  });

  it('flushes a large body while it is still arriving, then once more at its end', async () => {
    // Flushes as they are asked for, not as they end: a slow disk may finish the first after the last write.
    const proto = await fileHandlePrototype(dir);
    const { writev, datasync } = proto;
    const ops: string[] = [];
    const ofLarge = (handle: FileHandle) => fileOf(handle).includes('file-large');
    vi.spyOn(proto, 'writev').mockImplementation(async function (this: FileHandle, buffers: Buffer[]) {
      const result = await writev.call(this, buffers);
      if (ofLarge(this)) ops.push('write');
      return result;
    });
    vi.spyOn(proto, 'datasync').mockImplementation(function (this: FileHandle) {
      if (ofLarge(this)) ops.push('flush');
      return datasync.call(this);
    });
    const pieces = Array.from({ length: (5 * FLUSH_EVERY_BYTES) / 2 / WRITE_BATCH_BYTES }, (_, i) =>
      Buffer.alloc(WRITE_BATCH_BYTES, i),
    );
    await store.put('file-large', Readable.from(pieces));

    const lastWrite = ops.lastIndexOf('write');
    const flushes = ops.flatMap((op, i) => (op === 'flush' ? [i] : []));
    expect(flushes[0]).toBeLessThan(lastWrite);
    expect(flushes.at(-1)).toBeGreaterThan(lastWrite);
    expect((await store.stat('file-large')).size).toBe(pieces.length * WRITE_BATCH_BYTES);
  });

  it('stores a file where folders cannot be synced (EINVAL), and fails, keeping nothing, on any other error syncing one', async () => {
    const sync = vi.spyOn(await fileHandlePrototype(dir), 'sync');
    sync.mockRejectedValueOnce(fsError('EINVAL', 'invalid argument, fsync'));
    await store.put('file-fuse', Readable.from([Buffer.from('hello')]));
    expect((await contentOf(store, 'file-fuse')).toString()).toBe('hello');

    await store.put('file-aio', Readable.from([Buffer.from('first in its shard')]));
    await store.putPart('upload-1', 'part-1', Readable.from([Buffer.from('part')]));
    sync.mockRejectedValue(fsError('EIO', 'i/o error, fsync'));
    // Renamed into the shard, then the shard cannot be synced: the put takes its files back out.
    await expect(store.put('file-fuse-eio', Readable.from([Buffer.from('hello')]), meta)).rejects.toThrow('EIO');
    expect(await readdir(path.join(dir, 'files', 'io'))).toEqual(['file-aio']);
    await expect(store.putPart('upload-1', 'part-2', Readable.from([Buffer.from('part')]))).rejects.toThrow('EIO');
    expect(await readdir(path.join(dir, 'uploads', 'upload-1'))).toEqual(['part-1']);
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('runs at most MAX_BACKGROUND_FLUSHES flushes at once while bodies arrive, however many uploads run', async () => {
    const proto = await fileHandlePrototype(dir);
    const { datasync, writev } = proto;
    let clock = 0;
    const writes: { fd: number; at: number }[] = [];
    const flushes: { fd: number; start: number; end: number }[] = [];
    vi.spyOn(proto, 'writev').mockImplementation(function (this: FileHandle, buffers: Buffer[]) {
      writes.push({ fd: this.fd, at: clock++ });
      return writev.call(this, buffers);
    });
    vi.spyOn(proto, 'datasync').mockImplementation(async function (this: FileHandle) {
      const flush = { fd: this.fd, start: clock++, end: Infinity };
      flushes.push(flush);
      await sleep(50);
      await datasync.call(this);
      flush.end = clock++;
    });
    const body = () =>
      Readable.from(
        Array.from({ length: (5 * FLUSH_EVERY_BYTES) / 2 / WRITE_BATCH_BYTES }, () =>
          Buffer.alloc(WRITE_BATCH_BYTES, 1),
        ),
      );

    await Promise.all(['file-1', 'file-2', 'file-3', 'file-4'].map((id) => store.put(id, body())));

    // A flush with writes to its file after it began ran while the body was arriving.
    const background = flushes.filter((f) => writes.some((w) => w.fd === f.fd && w.at > f.start));
    const overlapping = background.map((f) => background.filter((g) => g.start <= f.start && g.end > f.start).length);
    expect(background.length).toBeGreaterThan(0);
    expect(Math.max(...overlapping)).toBeLessThanOrEqual(MAX_BACKGROUND_FLUSHES);
  });

  it('fails a put whose flush fails, leaving no blob and no temp file behind', async () => {
    const eio = fsError('EIO', 'i/o error, fdatasync');
    vi.spyOn(await fileHandlePrototype(dir), 'datasync').mockRejectedValueOnce(eio);

    await expect(store.put('file-eio', Readable.from([Buffer.from('hello')]))).rejects.toThrow('EIO');

    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expect(store.stat('file-eio')).rejects.toThrow();
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('fails a put whose flush in the background failed, without taking the rest of the body', async () => {
    const eio = fsError('EIO', 'i/o error, fdatasync');
    const proto = await fileHandlePrototype(dir);
    const datasync = vi.spyOn(proto, 'datasync').mockRejectedValueOnce(eio);
    const writev = vi.spyOn(proto, 'writev');
    const pieces = Array.from({ length: (4 * FLUSH_EVERY_BYTES) / WRITE_BATCH_BYTES }, () =>
      Buffer.alloc(WRITE_BATCH_BYTES, 1),
    );

    await expect(store.put('file-eio-early', Readable.from(pieces))).rejects.toThrow('EIO');

    expect(datasync).toHaveBeenCalledTimes(1);
    // The flush began after FLUSH_EVERY_BYTES; the body was four times that.
    expect(writev.mock.calls.length).toBeLessThan((2 * FLUSH_EVERY_BYTES) / WRITE_BATCH_BYTES);
    expect(await readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expect(store.stat('file-eio-early')).rejects.toThrow();
  });
});
