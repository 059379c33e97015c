/**
 * The writer behind every file the fs store creates (blobs and upload parts): a new file written
 * in large batches, flushed to the disk as it grows and once more before it counts as written.
 */
import fs, { type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/**
 * Writes of 512 KiB (the last one less). A request body reaches the store in the small pieces the
 * socket reads and the body's chunked framing cut it into, and fs.WriteStream wrote each piece on
 * its own: a trip to libuv's thread pool per piece, two thread wake-ups each, which cost more than
 * copying the bytes where a context switch is expensive (a VM;
 * docs/decisions/0008-fs-uploads-write-in-512-kib-batches.md).
 */
export const WRITE_BATCH_BYTES = 512 * 1024;
/** Linux's IOV_MAX. It also bounds what a batch holds of a client's 1-byte chunks: 1024 Buffers, not 500,000. */
const WRITE_BATCH_PIECES = 1024;

/**
 * Bytes written between flushes to the disk. A file is flushed (fdatasync) before it counts as
 * stored, since the catalog row that follows must not outlive its bytes in a power cut. Flushing only
 * once the body has ended would write the whole file out after its last byte arrived, and a large
 * upload would take noticeably longer; flushing as it goes lets the disk work while the body still
 * arrives, and leaves the last flush about this much to write
 * (docs/decisions/0009-fs-uploads-on-disk-before-the-answer.md).
 */
export const FLUSH_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * Flushes in the background at once, across the process. A flush holds one of libuv's four pool
 * threads for as long as the disk takes, and every upload's writes and every download's reads queue
 * behind the flushes: with one per upload, concurrent uploads ran slower than without flushing;
 * with at most two at once, at about that speed (one at a time did a little worse;
 * docs/decisions/0009-fs-uploads-on-disk-before-the-answer.md). A writer that finds no room writes
 * on and tries again after its next batch.
 */
export const MAX_BACKGROUND_FLUSHES = 2;
let backgroundFlushes = 0;

/**
 * A new file written in batches of WRITE_BATCH_BYTES or WRITE_BATCH_PIECES, one writev each. The
 * next batch gathers while one is written, so at most two batches are held, whatever the pieces
 * look like. The file is created exclusively before the first write, flushed to the disk as it
 * grows and once more before 'finish', and closed when the stream is destroyed, which pipeline does
 * on success and on failure alike.
 */
export class BatchedFileWriter extends Writable {
  private handle: FileHandle | undefined;
  private batch: Buffer[] = [];
  private batchBytes = 0;
  /** The batch being written: one at a time, in order. */
  private writing: Promise<void> = Promise.resolve();
  /** The flush under way, if any; a failed one stays here, and has destroyed the writer. */
  private flushing: Promise<void> | undefined;
  private unflushedBytes = 0;

  constructor(private readonly file: string) {
    super();
  }

  override _construct(done: (err?: Error | null) => void): void {
    fs.open(this.file, 'wx').then((handle) => {
      this.handle = handle;
      done();
    }, done);
  }

  // Writable hands single pieces here too.
  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const take = (from: number): void => {
      for (let i = from; i < chunks.length; ) {
        const chunk = chunks[i++]!.chunk;
        this.batch.push(chunk);
        this.batchBytes += chunk.length;
        if (this.batchBytes < WRITE_BATCH_BYTES && this.batch.length < WRITE_BATCH_PIECES) continue;
        this.send().then(() => take(i), done);
        return;
      }
      done();
    };
    take(0);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.send()
      .then(() => this.writing)
      .then(() => this.flushing)
      .then(() => this.handle!.datasync())
      .then(() => done(), done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.handle) {
      done(err);
      return;
    }
    // FileHandle.close waits for a write still in flight.
    this.handle.close().then(
      () => done(err),
      (closeErr: Error) => done(err ?? closeErr),
    );
  }

  /**
   * Once the batch before is written, start writing this one, and take more pieces meanwhile; a
   * failed write fails this call.
   */
  private async send(): Promise<void> {
    await this.writing;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.writing = this.writeAll(batch);
    // Its error surfaces in the next send or in _final, not as an unhandled rejection meanwhile.
    this.writing.catch(() => undefined);
  }

  private async writeAll(pending: Buffer[]): Promise<void> {
    // libuv reports a write that an error (a full disk) cut short as the bytes it did write; the
    // rest is ours to write again, and that write then fails with the error itself.
    while (pending.length > 0) {
      const { bytesWritten } = await this.handle!.writev(pending);
      if (bytesWritten === 0 && pending.some((b) => b.length > 0)) throw new Error(`no bytes written to ${this.file}`);
      this.unflushedBytes += bytesWritten;
      pending = unwritten(pending, bytesWritten);
    }
    if (this.unflushedBytes >= FLUSH_EVERY_BYTES && !this.flushing && backgroundFlushes < MAX_BACKGROUND_FLUSHES)
      this.flushInBackground();
  }

  /**
   * Writes go on meanwhile: fdatasync does not hold the file against them. A failed flush fails the
   * upload at once rather than after the rest of the body has arrived.
   */
  private flushInBackground(): void {
    this.unflushedBytes = 0;
    backgroundFlushes++;
    const flush = this.handle!.datasync().finally(() => backgroundFlushes--);
    this.flushing = flush;
    flush.then(
      () => (this.flushing = undefined),
      (err: Error) => this.destroy(err),
    );
  }
}

/** What is left of `buffers` once their first `written` bytes are out. */
function unwritten(buffers: Buffer[], written: number): Buffer[] {
  let i = 0;
  while (i < buffers.length && written >= buffers[i]!.length) written -= buffers[i++]!.length;
  return i < buffers.length ? [buffers[i]!.subarray(written), ...buffers.slice(i + 1)] : [];
}
