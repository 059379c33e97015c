import { once } from 'node:events';
import { mkdtemp, open, readdir, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchedFileWriter, FsBlobStore, WRITE_BATCH_BYTES } from '../src/storage/fs-store.js';
import { collect, deterministicBytes, piecesOf } from './helpers/bytes.js';

/** FileHandle's prototype, whose writev the store's writer calls. */
async function fileHandlePrototype(dir: string) {
  const handle = await open(path.join(dir, 'probe'), 'w');
  await handle.close();
  return Object.getPrototypeOf(handle) as { writev: (buffers: Buffer[]) => Promise<{ bytesWritten: number; buffers: Buffer[] }> };
}

const contentOf = async (store: FsBlobStore, id: string) => collect((await store.get(id)).stream);

/**
 * Bytes `writer` takes, `piece` by `piece`, until it stops asking for more (or `most` bytes). Until
 * `writing()` says a write has begun, a full buffer most likely means the file is still being
 * opened, so silence counts as a stall only after 10 s; after that, after one.
 */
async function acceptedUntilStalled(writer: Writable, piece: Buffer, most: number, writing: () => boolean): Promise<number> {
  let accepted = 0;
  while (accepted < most) {
    const more = writer.write(piece);
    accepted += piece.length;
    if (more) continue;
    const quietMs = writing() ? 1000 : 10_000;
    const drained = await Promise.race([once(writer, 'drain').then(() => true), sleep(quietMs).then(() => false)]);
    if (!drained) return accepted;
  }
  return accepted;
}

/** The process's open files under `dir`. */
async function openFilesUnder(dir: string): Promise<string[]> {
  const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t.startsWith(dir));
}

describe('fs store writes', () => {
  let dir: string;
  let store: FsBlobStore;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'files-gateway-fs-writes-'));
    store = new FsBlobStore(dir);
    await store.init();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

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

  it('holds at most two batches while a write does not return, and writes them all once it does', async () => {
    const proto = await fileHandlePrototype(dir);
    const original = proto.writev;
    let release!: () => void;
    const diskBack = new Promise<void>((resolve) => (release = resolve));
    const writev = vi.spyOn(proto, 'writev').mockImplementation(async function (this: unknown, buffers: Buffer[]) {
      await diskBack;
      return original.call(this, buffers);
    });
    const file = path.join(dir, 'stalled');
    const writer = new BatchedFileWriter(file);
    const piece = await deterministicBytes(64 * 1024);

    const accepted = await acceptedUntilStalled(writer, piece, 8 * WRITE_BATCH_BYTES, () => writev.mock.calls.length > 0);

    // One batch being written, the next one gathered, and the piece that found both busy.
    expect(accepted).toBeGreaterThanOrEqual(2 * WRITE_BATCH_BYTES);
    expect(accepted).toBeLessThanOrEqual(2 * WRITE_BATCH_BYTES + piece.length);
    release();
    writer.end();
    await finished(writer);
    expect((await stat(file)).size).toBe(accepted);
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
    vi.spyOn(await fileHandlePrototype(dir), 'writev').mockImplementationOnce(async (buffers: Buffer[]) => ({ bytesWritten: 0, buffers }));
    await expect(store.put('file-stuck', Readable.from([await deterministicBytes(WRITE_BATCH_BYTES)]))).rejects.toThrow('no bytes written');
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
