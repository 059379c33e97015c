import { mkdtemp, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchedFileWriter, FLUSH_EVERY_BYTES, WRITE_BATCH_BYTES } from '../src/storage/batched-file-writer.js';
import { deterministicBytes, piecesOf } from './helpers/bytes.js';
import { acceptedUntilStalled, fileHandlePrototype, fileOf, fsError, openFilesUnder } from './helpers/file-handles.js';

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'files-gateway-batched-writer-'));
  file = path.join(dir, 'out');
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

/** The bytes of each writev, in order. */
const writeSizes = (writev: { mock: { calls: unknown[][] } }) =>
  writev.mock.calls.map(([buffers]) => (buffers as Buffer[]).reduce((n, b) => n + b.length, 0));

/**
 * What the writer asks of the disk for `file`, in order: "write" once a writev is done, "flush" when
 * an fdatasync is asked for. Flushes are recorded, not done (their order is what these tests check,
 * and a real one would only slow the disk down for tests running alongside); the first one rejects
 * with `flushError`, if given.
 */
async function recordOps(flushError?: Error): Promise<string[]> {
  const proto = await fileHandlePrototype(dir);
  const { writev, datasync } = proto;
  const ops: string[] = [];
  let failFlush = flushError;
  vi.spyOn(proto, 'writev').mockImplementation(async function (this: FileHandle, buffers: Buffer[]) {
    const result = await writev.call(this, buffers);
    if (fileOf(this) === file) ops.push('write');
    return result;
  });
  vi.spyOn(proto, 'datasync').mockImplementation(async function (this: FileHandle) {
    if (fileOf(this) !== file) return datasync.call(this);
    if (failFlush) {
      const err = failFlush;
      failFlush = undefined;
      throw err;
    }
    ops.push('flush');
  });
  return ops;
}

describe('BatchedFileWriter', () => {
  it('writes the pieces in order, in batches of WRITE_BATCH_BYTES, the last one less', async () => {
    const writev = vi.spyOn(await fileHandlePrototype(dir), 'writev');
    const bytes = await deterministicBytes(3 * WRITE_BATCH_BYTES + 1000);

    await pipeline(Readable.from(piecesOf(bytes, 16_384)), new BatchedFileWriter(file));

    expect((await readFile(file)).equals(bytes)).toBe(true);
    const sizes = writeSizes(writev);
    expect(sizes.length).toBe(4);
    for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(WRITE_BATCH_BYTES);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(bytes.length);
  });

  it('puts at most 1024 pieces (IOV_MAX) in one write', async () => {
    const writev = vi.spyOn(await fileHandlePrototype(dir), 'writev');
    const bytes = await deterministicBytes(30_000);

    await pipeline(Readable.from(piecesOf(bytes, 3)), new BatchedFileWriter(file));

    const counts = writev.mock.calls.map(([buffers]) => (buffers as Buffer[]).length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10_000);
    expect(Math.max(...counts)).toBe(1024);
    expect((await readFile(file)).equals(bytes)).toBe(true);
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
    const writer = new BatchedFileWriter(file);
    const piece = await deterministicBytes(64 * 1024);

    const accepted = await acceptedUntilStalled(
      writer,
      piece,
      8 * WRITE_BATCH_BYTES,
      () => writev.mock.calls.length > 0,
    );

    // One batch being written, the next one gathered, and the piece that found both busy.
    expect(accepted).toBeGreaterThanOrEqual(2 * WRITE_BATCH_BYTES);
    expect(accepted).toBeLessThanOrEqual(2 * WRITE_BATCH_BYTES + piece.length);
    release();
    writer.end();
    await finished(writer);
    expect((await stat(file)).size).toBe(accepted);
  });

  it('creates its file exclusively: a file already there fails the writer and is left as it was', async () => {
    await writeFile(file, 'not yours');
    const body = Readable.from([Buffer.from('new bytes')]);

    await expect(pipeline(body, new BatchedFileWriter(file))).rejects.toMatchObject({ code: 'EEXIST' });

    expect(await readFile(file, 'utf8')).toBe('not yours');
    expect(body.destroyed).toBe(true);
  });

  it('writes an empty body as an empty file, flushed before finish', async () => {
    const ops = await recordOps();
    const writer = new BatchedFileWriter(file);
    writer.on('finish', () => ops.push('finish'));

    await pipeline(Readable.from([]), writer);

    expect((await stat(file)).size).toBe(0);
    expect(ops).toEqual(['flush', 'finish']);
  });

  it("flushes the file after its last write and before 'finish', then closes it", async () => {
    const ops = await recordOps();
    const writer = new BatchedFileWriter(file);
    writer.on('finish', () => ops.push('finish'));
    writer.on('close', () => ops.push('close'));

    await pipeline(Readable.from(piecesOf(await deterministicBytes(WRITE_BATCH_BYTES + 10), 4096)), writer);
    await finished(writer).catch(() => undefined);
    await vi.waitFor(() => expect(ops.at(-1)).toBe('close'));

    expect(ops).toEqual(['write', 'write', 'flush', 'finish', 'close']);
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('flushes in the background every FLUSH_EVERY_BYTES while the pieces still arrive', async () => {
    const ops = await recordOps();
    const batches = (3 * FLUSH_EVERY_BYTES) / WRITE_BATCH_BYTES;
    const pieces = Array.from({ length: batches }, (_, i) => Buffer.alloc(WRITE_BATCH_BYTES, i));

    await pipeline(Readable.from(pieces), new BatchedFileWriter(file));

    const lastWrite = ops.lastIndexOf('write');
    const flushes = ops.flatMap((op, i) => (op === 'flush' ? [i] : []));
    // At least one flush began before the last write, and one more came after it.
    expect(flushes[0]).toBeLessThan(lastWrite);
    expect(flushes.at(-1)).toBeGreaterThan(lastWrite);
    // The first one only once FLUSH_EVERY_BYTES were written.
    expect(ops.slice(0, flushes[0]).filter((op) => op === 'write').length).toBeGreaterThanOrEqual(
      FLUSH_EVERY_BYTES / WRITE_BATCH_BYTES,
    );
    expect((await stat(file)).size).toBe(batches * WRITE_BATCH_BYTES);
  });

  it('fails at once with the error of a background flush, without taking the rest of the body', async () => {
    const eio = fsError('EIO', 'i/o error, fdatasync');
    const ops = await recordOps(eio);
    const pieces = Array.from({ length: (4 * FLUSH_EVERY_BYTES) / WRITE_BATCH_BYTES }, () =>
      Buffer.alloc(WRITE_BATCH_BYTES, 1),
    );
    const writer = new BatchedFileWriter(file);

    await expect(pipeline(Readable.from(pieces), writer)).rejects.toBe(eio);

    expect(ops.filter((op) => op === 'write').length).toBeLessThan((2 * FLUSH_EVERY_BYTES) / WRITE_BATCH_BYTES);
    expect(writer.destroyed).toBe(true);
    await vi.waitFor(async () => expect(await openFilesUnder(dir)).toEqual([]));
  });

  it('writes the rest of a batch that a write took only part of', async () => {
    const proto = await fileHandlePrototype(dir);
    const original = proto.writev;
    // What libuv reports when a full disk stops a write part-way: the bytes it did write, no error.
    const writev = vi.spyOn(proto, 'writev').mockImplementationOnce(function (this: unknown, buffers: Buffer[]) {
      return original.call(this, [buffers[0]!.subarray(0, 1000)]);
    });
    const bytes = await deterministicBytes(WRITE_BATCH_BYTES + 5000);

    await pipeline(Readable.from(piecesOf(bytes, 16_384)), new BatchedFileWriter(file));

    expect((await readFile(file)).equals(bytes)).toBe(true);
    // 32 pieces of 16 KiB are one batch: the batch (of which 1000 bytes went out), its rest, the last piece.
    expect(writeSizes(writev)).toEqual([WRITE_BATCH_BYTES, WRITE_BATCH_BYTES - 1000, 5000]);
  });

  it("fails with 'no bytes written' when a write takes none, and closes its file", async () => {
    vi.spyOn(await fileHandlePrototype(dir), 'writev').mockImplementationOnce(async (buffers: Buffer[]) => ({
      bytesWritten: 0,
      buffers,
    }));

    await expect(
      pipeline(Readable.from([await deterministicBytes(WRITE_BATCH_BYTES)]), new BatchedFileWriter(file)),
    ).rejects.toThrow(`no bytes written to ${file}`);

    await vi.waitFor(async () => expect(await openFilesUnder(dir)).toEqual([]));
  });

  it('closes its file when destroyed part-way, keeping what it wrote', async () => {
    const writer = new BatchedFileWriter(file);
    writer.write(await deterministicBytes(WRITE_BATCH_BYTES + 10));
    await vi.waitFor(async () => expect((await stat(file)).size).toBeGreaterThan(0));

    writer.destroy(new Error('client went away'));
    await expect(finished(writer)).rejects.toThrow('client went away');

    await vi.waitFor(async () => expect(await openFilesUnder(dir)).toEqual([]));
    // Removing a partial file is its owner's call (the store writes to a temp file it then removes).
    expect((await stat(file)).size).toBe(WRITE_BATCH_BYTES + 10);
  });
});
