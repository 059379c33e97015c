import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const CHUNK = 1024 * 1024;

/**
 * `size` pseudo-random bytes (AES-CTR keystream of `seed`): deterministic, incompressible and made
 * one chunk at a time, so a 200 MiB test never holds 200 MiB. `sha256` resolves once the stream ends.
 */
export function deterministicStream(
  size: number,
  seed = 'files-gateway',
): { stream: Readable; sha256: Promise<string> } {
  const key = createHash('sha256').update(seed).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(CHUNK);
  let sent = 0;
  let settle!: (hex: string) => void;
  const sha256 = new Promise<string>((resolve) => (settle = resolve));
  const stream = new Readable({
    read() {
      const n = Math.min(CHUNK, size - sent);
      if (n === 0) {
        settle(hash.digest('hex'));
        this.push(null);
        return;
      }
      const chunk = cipher.update(zeros.subarray(0, n));
      hash.update(chunk);
      sent += n;
      this.push(chunk);
    },
  });
  return { stream, sha256 };
}

/** Same bytes as deterministicStream, in memory: for small sizes only. */
export async function deterministicBytes(size: number, seed?: string): Promise<Buffer> {
  return collect(deterministicStream(size, seed).stream);
}

/** `bytes` cut into pieces of `size` (the last one shorter): a body that arrives in small chunks. */
export const piecesOf = (bytes: Buffer, size: number): Buffer[] =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Sends `before` bytes, then waits for `failWhen` (e.g. "a multipart upload is open") and fails
 * with `error`, as the domain does when a client aborts or a size limit trips mid-upload.
 */
export function failingStream(before: number, error: Error, failWhen: () => Promise<void> = async () => {}): Readable {
  const source = deterministicStream(before).stream;
  return Readable.from(
    (async function* () {
      yield* source;
      await failWhen();
      throw error;
    })(),
    { objectMode: false },
  );
}
