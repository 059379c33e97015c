import { Transform, type TransformCallback } from 'node:stream';
import type { GatewayError } from '../errors.js';

/**
 * A file part's bytes on their way to a store: one pass-through stream that counts them for the
 * edge (`onBytes`) and fails with the domain's error as soon as more than the limit the domain set
 * (setLimit) have gone by, so limits hold while streaming, whatever Content-Length claimed (chunked
 * bodies have none). One stream, not one per concern: every stream a piece crosses costs CPU per
 * 64 KiB piece (docs/decisions/0027).
 */
export class ByteLimit extends Transform {
  bytes = 0;
  private max = Number.POSITIVE_INFINITY;
  private tooLarge: (() => GatewayError) | undefined;

  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }

  /**
   * Fail with `tooLarge()` past `max` bytes; set before the stream goes to a store. A store settles
   * only once its own cleanup (aborting an S3 multipart upload) is done and rejects with the body's
   * error, so the caller hears the breach after nothing is left behind.
   */
  setLimit(max: number, tooLarge: () => GatewayError): void {
    this.max = max;
    this.tooLarge = tooLarge;
    if (this.bytes > max) this.destroy(tooLarge());
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.onBytes(chunk.length);
    if (this.bytes > this.max) done(this.tooLarge!());
    else done(null, chunk);
  }
}
