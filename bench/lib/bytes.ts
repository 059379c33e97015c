import { Readable, Writable } from 'node:stream';
import { deterministicBytes } from '../../test/helpers/bytes.js';

const BLOCK = 1024 * 1024;
let block: Buffer | undefined;

/**
 * `size` bytes: one pseudo-random MiB (test/helpers/bytes.ts), repeated. Unlike deterministicStream
 * it costs no CPU per byte (no AES, no SHA-256), so on two cores the generator does not compete
 * with the gateway and the S3 server it is measuring. Both sides of a figure send these same bytes.
 */
export async function patternStream(size: number): Promise<Readable> {
  block ??= await deterministicBytes(BLOCK, 'files-gateway-bench');
  const source = block;
  let sent = 0;
  return new Readable({
    highWaterMark: BLOCK,
    read() {
      const n = Math.min(BLOCK, size - sent);
      sent += n;
      this.push(n === 0 ? null : n === BLOCK ? source : source.subarray(0, n));
    },
  });
}

/** A sink that counts and drops: both download sides are consumed the same way, without hashing. */
export function discard(): Writable & { bytes: number } {
  const sink = new Writable({
    highWaterMark: BLOCK,
    write(chunk: Buffer, _enc, done) {
      sink.bytes += chunk.length;
      done();
    },
  }) as Writable & { bytes: number };
  sink.bytes = 0;
  return sink;
}
