import { finished, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

/** What every object written from a stream is created with. */
export interface ObjectTarget {
  Bucket: string;
  Key: string;
  ContentType: string;
  Metadata?: Record<string, string>;
}

/**
 * Part buffers shared by every upload of one store. A part is copied into a buffer taken from
 * here and the buffer comes back once S3 has the part, so a GiB streamed through costs no fresh
 * memory: the body's pieces die young (a scavenge frees them), where buffers allocated per part
 * live long enough to reach V8's old space and bring on full collections, a third of the CPU of an
 * upload (docs/decisions/0024). Buffers idle for `idleMs` are dropped, so a quiet gateway gives
 * the memory back.
 *
 * Sends are capped across all uploads (`maxSending`), so memory is bounded by one filling buffer
 * per upload plus `maxSending` buffers, whatever the number of uploads. A filling buffer waits only
 * for its own client: a slow client holds one buffer and never holds up anyone else's sends.
 */
export class PartBuffers {
  private readonly idle: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly size: number,
    private readonly maxSending: number,
    private readonly idleMs = 10_000,
  ) {}

  take(): Buffer {
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buffer: Buffer): void {
    if (this.idle.length < this.maxSending + 1) this.idle.push(buffer);
    this.timer?.refresh();
    this.timer ??= setTimeout(() => {
      this.idle.length = 0;
      this.timer = undefined;
    }, this.idleMs).unref();
  }

  /** A turn to send a part, first come first served; call the returned function when S3 has it. */
  async sendTurn(): Promise<() => void> {
    if (this.sending < this.maxSending) this.sending++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // hand the turn straight to the next in line, or free it
      const next = this.waiting.shift();
      if (next) next();
      else this.sending--;
    };
  }
}

/** How long a part kept back (PartsInto) holds its turn to send while the body's next bytes come. */
const HOLD_TURN_MS = 1000;

/** Bodies up to this size are gathered piece by piece; under any part size S3 allows (5 MiB). */
const SMALL_BODY = 1024 * 1024;

export interface StreamUploadOptions {
  buffers: PartBuffers;
  /** This upload's parts sent at once; with the one being filled, (queueSize + 1) x part size. */
  queueSize: number;
  /** Metadata known only once the body has ended, waited for when the body fits in one PutObject. */
  lateMetadata?: () => Promise<Record<string, string> | undefined>;
  /** Send the body as parts of this multipart upload instead, when it is not too short to. */
  into?: PartsInto;
}

/**
 * A stretch of part numbers of a multipart upload that someone else completes (an Uploads API
 * upload's assembly): the body's parts go there, numbered from `firstPartNumber` on, and stay
 * there whatever happens; nothing is completed or aborted.
 */
export interface PartsInto {
  Key: string;
  UploadId: string;
  firstPartNumber: number;
  /** Part numbers the body may take. */
  maxParts: number;
  /**
   * The smallest part S3 takes but the last (5 MiB). Every part sent is at least this: the last
   * part of the body takes the rest when the rest would be shorter, and a body shorter than this
   * is written as an object of its own at the target instead.
   */
  minPart: number;
}

export interface Written {
  size: number;
  /** A single PutObject's ETag; undefined for a multipart upload. */
  etag?: string;
  /** lateMetadata was waited for and went with the object. */
  lateMetadataStored: boolean;
  /** The body went into `into`; false when it became an object of its own. */
  sentInto: boolean;
}

/**
 * Writes `body` (of unknown length) as one object: a single PutObject when it fits in one part,
 * else a multipart upload of equal parts, up to `queueSize` of them in flight (and no more than the
 * store allows across all uploads) while the next fills.
 * Nothing is visible before the end: on any failure the multipart upload is aborted once the parts
 * in flight have settled, and the promise rejects with the first error. Resolves with the size,
 * and the ETag when S3 gives one worth keeping (a single PutObject's; Ceph 16 answers a completed
 * multipart upload's empty).
 */
export async function uploadStream(
  client: S3Client,
  target: ObjectTarget,
  body: Readable,
  { buffers, queueSize, lateMetadata, into }: StreamUploadOptions,
): Promise<Written> {
  const { Bucket } = target;
  const Key = into?.Key ?? target.Key;
  const firstPartNumber = into?.firstPartNumber ?? 1;
  const partSize = buffers.size;
  const inFlight = new Set<Promise<void>>();
  const etags: string[] = [];
  let multipartId = into?.UploadId;
  let failure: { error: unknown } | undefined;
  // With `into`: a full part kept back until the body proves to have at least minPart more bytes,
  // so a short rest joins it rather than going out as a part too small. It keeps its turn to send
  // (memory stays within the store's cap) unless the body is slow to prove it: then the turn goes
  // back, so a slow client holds one more buffer rather than a send everyone shares.
  let held: { buffer: Buffer; done: (() => void) | undefined; timer: NodeJS.Timeout } | undefined;
  const release = (h: NonNullable<typeof held>): (() => void) | undefined => {
    clearTimeout(h.timer);
    return h.done;
  };
  // A body's first pieces are kept as they come: a small file goes out in one PutObject without
  // taking a part buffer, which 16 clients' small files at once would otherwise churn through.
  let pieces: Buffer[] | null = [];
  // the buffer being filled; null before the first and while a full one waits to be sent
  let part: Buffer | null = null;
  let filled = 0;
  let size = 0;

  /** Waits until this upload's queue and the store have room for one more part; its turn. */
  const turn = async (): Promise<(() => void) | undefined> => {
    multipartId ??= (await client.send(new CreateMultipartUploadCommand(target))).UploadId;
    while (inFlight.size >= queueSize) await Promise.race(inFlight);
    return failure ? undefined : buffers.sendTurn();
  };
  /** Sends `body` (a pool buffer unless `pooled` is false) with a turn already taken. */
  const dispatch = (body: Buffer, length: number, done: () => void, pooled = true): void => {
    const index = etags.length;
    if (into && index >= into.maxParts)
      throw new Error(`a part needs more than the ${into.maxParts} part numbers it has`);
    etags.push('');
    const sending = client
      .send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId: multipartId,
          PartNumber: firstPartNumber + index,
          Body: body.subarray(0, length),
        }),
      )
      .then(
        (res) => {
          etags[index] = res.ETag ?? '';
        },
        (error: unknown) => {
          failure ??= { error };
        },
      )
      .finally(() => {
        done();
        if (pooled) buffers.give(body);
        inFlight.delete(sending);
      });
    inFlight.add(sending);
  };
  /** Hands a full buffer to S3 once this upload's queue and the store have room for it. */
  const send = async (buffer: Buffer, length: number): Promise<void> => {
    const done = await turn();
    if (done) dispatch(buffer, length, done);
    else buffers.give(buffer);
  };
  const settle = async (): Promise<void> => {
    await Promise.all(inFlight);
    if (failure) throw failure.error;
  };

  /** Copies `chunk` from `offset` into part buffers; a promise when a full part must go first. */
  const fill = (chunk: Buffer, offset: number): Promise<void> | undefined => {
    while (offset < chunk.length) {
      // A full part goes only once more bytes follow: a body of exactly one part is one PutObject.
      if (filled === partSize) {
        // no buffer of this upload is filling while it waits to send the full one
        const full = part!;
        part = null;
        filled = 0;
        const next = () => {
          if (failure) throw failure.error;
          part = buffers.take();
          return fill(chunk, offset);
        };
        if (!into) return send(full, partSize).then(next);
        return turn().then((done) => {
          if (!done) {
            buffers.give(full);
            throw failure!.error;
          }
          const kept: NonNullable<typeof held> = {
            buffer: full,
            done,
            timer: setTimeout(() => {
              kept.done = undefined;
              done();
            }, HOLD_TURN_MS),
          };
          held = kept;
          return next();
        });
      }
      const copied = chunk.copy(part!, filled, offset);
      filled += copied;
      offset += copied;
      if (held && filled >= into!.minPart) {
        const { buffer } = held;
        const done = release(held);
        held = undefined;
        if (done) dispatch(buffer, partSize, done);
        else
          return send(buffer, partSize).then(() => {
            if (failure) throw failure.error;
            return fill(chunk, offset);
          });
      }
    }
    return undefined;
  };

  try {
    await consume(body, (chunk) => {
      size += chunk.length;
      if (pieces) {
        if (size <= SMALL_BODY) {
          pieces.push(chunk);
          return undefined;
        }
        part = buffers.take();
        for (const piece of pieces) filled += piece.copy(part, filled);
        pieces = null;
      }
      return fill(chunk, 0);
    });
    if (into ? etags.length === 0 && !held && size < into.minPart : multipartId === undefined) {
      const Body = pieces ? Buffer.concat(pieces, size) : part!.subarray(0, filled);
      const Metadata = (await lateMetadata?.()) ?? target.Metadata;
      const res = await client.send(new PutObjectCommand({ ...target, Body, ...(Metadata && { Metadata }) }));
      return {
        size,
        etag: res.ETag,
        lateMetadataStored: lateMetadata !== undefined && Metadata !== undefined,
        sentInto: false,
      };
    }
    if (held) {
      // the rest is shorter than minPart: it goes out with the held part, as one
      const { buffer } = held;
      const kept = release(held);
      held = undefined;
      const done = kept ?? (await turn());
      if (!done) {
        buffers.give(buffer);
        throw failure!.error;
      }
      if (filled === 0) dispatch(buffer, partSize, done);
      else {
        const joined = Buffer.concat([buffer, part!.subarray(0, filled)]);
        buffers.give(buffer);
        dispatch(joined, joined.length, done, false);
      }
    } else if (filled > 0) {
      const last = part!;
      part = null;
      await send(last, filled);
    }
    await settle();
    if (into) return { size, lateMetadataStored: false, sentInto: true };
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId: multipartId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    return { size, lateMetadataStored: false, sentInto: false };
  } catch (err) {
    if (held) {
      release(held)?.();
      buffers.give(held.buffer);
      held = undefined;
    }
    await Promise.all(inFlight);
    // parts sent into someone else's multipart upload stay there: the part is simply not recorded
    if (multipartId !== undefined && !into) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: multipartId })).catch(() => undefined);
    }
    throw err;
  } finally {
    if (part) buffers.give(part);
  }
}

/**
 * Hands each of `body`'s pieces to `take` as it arrives, pausing the body while a promise `take`
 * returned is pending. Plain 'data' events, not an async iterator: a promise and a microtask per
 * 64 KiB piece were a measurable share of an upload's CPU. Resolves once the body has ended and
 * the last take settled; on any failure the body is destroyed (as leaving a for-await loop does)
 * and the promise rejects with the first error.
 */
function consume(body: Readable, take: (chunk: Buffer) => Promise<void> | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let busy: Promise<void> | undefined;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      body.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      let wait: Promise<void> | undefined;
      try {
        wait = take(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      if (!wait) return;
      body.pause();
      busy = wait.then(() => {
        busy = undefined;
        if (!settled) body.resume();
      }, fail);
    };
    body.on('data', onData);
    finished(body, (err) => {
      if (err) fail(err);
      else
        void (busy ?? Promise.resolve()).then(() => {
          settled = true;
          resolve();
        }, fail);
    });
  });
}

/**
 * Part bodies go as UNSIGNED-PAYLOAD, which the signer takes from this header instead of hashing
 * the body: SHA-256 is most of what an upload costs the gateway beyond moving the bytes, and over
 * TLS, whose records carry their own integrity check, it buys nothing (docs/decisions/0024).
 */
export function sendUnsignedPayloads(client: S3Client): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown };
      if (request.headers && request.body instanceof Uint8Array)
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'filesGatewayUnsignedPayload' },
  );
}
