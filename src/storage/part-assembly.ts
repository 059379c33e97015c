import { createHash } from 'node:crypto';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { ChecksumMismatchError } from '../errors.js';
import type { PartRef } from './blob-store.js';

/** A byte range of one stored part; `end` exclusive. */
export interface PartSlice {
  partId: string;
  start: number;
  end: number;
}

/** The bytes of `slices`, one after the other, opened one at a time as the reader gets to them. */
export function concatSlices(slices: readonly PartSlice[], open: (slice: PartSlice) => Promise<Readable>): Readable {
  return Readable.from(
    (async function* () {
      for (const slice of slices) if (slice.end > slice.start) yield* await open(slice);
    })(),
    { objectMode: false },
  );
}

/** Every byte of `parts` in order, as slices. */
export const wholeParts = (parts: readonly PartRef[]): PartSlice[] =>
  parts.map((p) => ({ partId: p.id, start: 0, end: p.bytes }));

/** `bytes`, checked against `md5` when one is given (errors travel through). */
export const withMd5Check = (bytes: Readable, md5: string | undefined): Readable =>
  md5 === undefined ? bytes : pipeline(bytes, md5Verifier(md5), () => undefined);

/**
 * Passes bytes through and, at the end, fails the stream with a ChecksumMismatchError if their MD5
 * (hex) is not `expected`: a store writing to a temp place then never makes the bytes visible.
 */
function md5Verifier(expected: string): Transform {
  const hash = createHash('md5');
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      const actual = hash.digest('hex');
      done(actual === expected.toLowerCase() ? null : new ChecksumMismatchError(expected, actual));
    },
  });
}

/** One part of the S3 multipart upload that becomes the file. */
export type Segment =
  /** Copied server-side (UploadPartCopy with a CopySourceRange): these bytes never reach the gateway. */
  | { kind: 'copy'; slice: PartSlice }
  /** Streamed through the gateway from the part objects into one UploadPart. */
  | { kind: 'stream'; slices: PartSlice[]; bytes: number };

export interface SegmentLimits {
  /** Smallest part S3 takes, except for the last one (5 MiB). */
  minPart: number;
  /** Largest part S3 takes, copied or uploaded (5 GiB). */
  maxPart: number;
}

export const S3_LIMITS: SegmentLimits = { minPart: 5 * 1024 * 1024, maxPart: 5 * 1024 * 1024 * 1024 };
export const S3_MAX_PARTS = 10_000;

/**
 * How to build one object from upload parts with S3 multipart, tusd style. S3 wants every part but
 * the last to be at least `minPart` (5 MiB) and at most `maxPart` (5 GiB), and at most 10,000 parts;
 * OpenAI parts have any size up to 64 MiB, in an order known only at complete.
 *
 * Walking the parts in order:
 * - a stretch of at least minPart bytes of one part is copied server-side (UploadPartCopy), cut in
 *   n = ceil(len / maxPart) equal ranges when longer than maxPart (each then is len / n > maxPart / 2,
 *   far above minPart);
 * - shorter stretches (small parts, or what is left of a part) start a "run" that is streamed
 *   through the gateway into one UploadPart. A run takes bytes from the following parts until it
 *   holds exactly minPart: from a big part only the first (minPart - run) bytes, after which the
 *   rest of that part, if still at least minPart, is copied again.
 * So every segment but the last is at least minPart (runs exactly minPart), which bounds the count
 * at floor(total / minPart) + 1: 10,000 parts allow up to 48.8 GiB (config.ts refuses more). The
 * bytes through the gateway are the small parts plus less than minPart per big part that follows
 * a short stretch; 64 MiB parts in any order go entirely server-side. A file of one run only (under
 * 5 MiB in total) is an ordinary single PutObject.
 */
export function planSegments(parts: readonly PartRef[], limits: SegmentLimits = S3_LIMITS): Segment[] {
  const segments: Segment[] = [];
  let run: PartSlice[] = [];
  let runBytes = 0;
  const flush = () => {
    if (run.length > 0) segments.push({ kind: 'stream', slices: run, bytes: runBytes });
    run = [];
    runBytes = 0;
  };
  const addToRun = (slice: PartSlice) => {
    run.push(slice);
    runBytes += slice.end - slice.start;
    if (runBytes >= limits.minPart) flush();
  };
  for (const part of parts) {
    let offset = 0;
    if (runBytes > 0) {
      offset = Math.min(part.bytes, limits.minPart - runBytes);
      addToRun({ partId: part.id, start: 0, end: offset });
    }
    const rest = part.bytes - offset;
    if (rest >= limits.minPart) {
      const n = Math.ceil(rest / limits.maxPart);
      for (let i = 0; i < n; i++) {
        const start = offset + Math.floor((rest * i) / n);
        const end = offset + Math.floor((rest * (i + 1)) / n);
        segments.push({ kind: 'copy', slice: { partId: part.id, start, end } });
      }
    } else if (rest > 0) {
      addToRun({ partId: part.id, start: offset, end: part.bytes });
    }
  }
  flush();
  return segments;
}
