import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GatewayError } from '../errors.js';

/**
 * Passes bytes through and fails the stream with `tooLarge` as soon as more than `max` bytes have
 * gone by: limits hold while streaming, whatever Content-Length claimed (chunked bodies have none).
 */
export class ByteLimit extends Transform {
  bytes = 0;

  constructor(
    private readonly max: number,
    private readonly tooLarge: () => GatewayError,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) done(this.tooLarge());
    else done(null, chunk);
  }
}

/**
 * Stream `source` through a ByteLimit of `max` into `sink` (a store write). Waits for both sides to
 * settle, so a store's own cleanup (aborting an S3 multipart upload) is finished before the caller
 * hears about the failure.
 */
export async function streamLimited<T>(
  source: Readable,
  max: number,
  tooLarge: () => GatewayError,
  sink: (body: Readable) => Promise<T>,
): Promise<T> {
  const limit = new ByteLimit(max, tooLarge);
  const [piped, stored] = await Promise.allSettled([pipeline(source, limit), sink(limit)]);
  if (stored.status === 'rejected' || piped.status === 'rejected') throw firstCause(piped, stored);
  return stored.value;
}

/**
 * Why a streamed upload failed: a limit breach or client abort shows up on the source side, a
 * store failure on the store side, and each side usually also sees the other's echo.
 */
function firstCause(source: PromiseSettledResult<unknown>, store: PromiseSettledResult<unknown>): unknown {
  if (source.status === 'rejected' && source.reason instanceof GatewayError) return source.reason;
  if (store.status === 'rejected') return store.reason;
  return (source as PromiseRejectedResult).reason;
}
