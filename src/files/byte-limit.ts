import { Transform, type TransformCallback } from 'node:stream';
import type { GatewayError } from '../errors.js';

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
