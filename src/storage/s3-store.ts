import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { rootCertificates } from 'node:tls';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectTaggingCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type BucketLocationConstraint,
  type ListObjectsV2CommandOutput,
  type _Object,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3Config } from '../config.js';
import type { StoreCallObserver } from '../metrics.js';
import { BlobNotFoundError, ChecksumMismatchError, unavailable } from '../errors.js';
import { S3HttpHandler } from './s3-http-handler.js';
import { PartBuffers, sendUnsignedPayloads, uploadStream, type PartsInto, type Written } from './s3-stream-upload.js';
import { fromTags, fromUserMetadata, toTags, toUserMetadata } from './s3-metadata.js';
import type {
  BlobMeta,
  BlobRead,
  BlobStat,
  BlobStore,
  ByteRange,
  PartAssembly,
  PartRef,
  PartStore,
  PresignGetOptions,
  StoredBlob,
} from './blob-store.js';
import {
  S3_LIMITS,
  concatSlices,
  planSegments,
  wholeParts,
  withMd5Check,
  type PartSlice,
  type Segment,
} from './part-assembly.js';
import {
  ASSEMBLED_KEY,
  LAST_PART_NUMBER,
  assembledFileId,
  assembledKey,
  assemblyTail,
  blockFor,
  completesAsItIs,
  firstPartNumber,
  formatHandle,
  parseHandle,
  slotCount,
  tailOf,
} from './s3-assembly.js';

/** Keys this store owns under the prefix; anything else in the bucket is not ours to list. */
const FILE_KEY = /^file-[0-9a-f]{1,64}$/;
/** Upload parts live under here: FILE_KEY never matches, so list() and reindex skip them. */
const PARTS_DIR = '.uploads/';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (err: unknown): number | undefined => (err as SdkError)?.$metadata?.httpStatusCode;
const nameOf = (err: unknown): string | undefined => (err as SdkError)?.name;

function isNetworkError(err: unknown): boolean {
  const e = err as SdkError;
  return (
    NETWORK_CODES.has(e?.code ?? '') ||
    e?.name === 'TimeoutError' ||
    /socket hang up/i.test(e?.message ?? '') ||
    // Node 20 tries every address of "localhost" and reports an AggregateError carrying the code
    (err instanceof AggregateError && err.errors.some(isNetworkError))
  );
}

/**
 * S3's own words for a transfer between it and the gateway that broke (a request body it did not
 * get whole, or stopped receiving): the store is not there for this request, as with a reset.
 */
const BROKEN_TRANSFER = new Set(['IncompleteBody', 'RequestTimeout']);

/** A missing object. HEAD answers carry no body, so their 404 is only "NotFound". */
const isMissing = (err: unknown): boolean =>
  nameOf(err) === 'NoSuchKey' || (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket');

/**
 * S3 failures become the gateway's own errors here, at the edge: missing -> BlobNotFoundError,
 * unreachable, 5xx, a broken transfer or a vanished bucket -> 503. Anything else (a 403 after
 * start-up, say) is a bug or a misconfiguration and stays as it is, to be reported as a 500.
 */
function translate(err: unknown, id?: string): unknown {
  if (id !== undefined && isMissing(err)) return new BlobNotFoundError(id);
  const status = statusOf(err);
  const name = nameOf(err) ?? '';
  if (
    isNetworkError(err) ||
    (status !== undefined && status >= 500) ||
    name === 'NoSuchBucket' ||
    BROKEN_TRANSFER.has(name)
  ) {
    return unavailable('object store', err);
  }
  return err;
}

/**
 * Blobs as objects in one bucket under `prefix + id`.
 *
 * Part sizes, tusd style: S3 wants every part but the last to be at least 5 MiB and allows at most
 * 10,000 parts, so the object size limit is partSize x 10,000 (8 MiB parts: 78 GiB; config.ts
 * refuses less than 5 MiB). The size of an upload is unknown up front (a streamed multipart form),
 * so the part size is fixed rather than derived from it. Memory per upload is bounded by about
 * (queueSize + 1) x partSize: queueSize parts in flight plus the one being filled.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly endpointLabel: string;
  private readonly accessKeyId: string | undefined;
  private readonly region: string;
  private readonly autoCreateBucket: boolean;
  private readonly queueSize: number;
  private readonly partBuffers: PartBuffers;
  readonly parts: PartStore = this;
  readonly assembly: PartAssembly = this;
  /** Signs presigned download URLs for the endpoint clients reach; never sends a request. */
  private readonly signer: S3Client;

  constructor(config: S3Config, opts: { observeCall?: StoreCallObserver } = {}) {
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.region = config.region;
    this.endpointLabel = config.endpoint ?? `AWS S3 (${config.region})`;
    this.accessKeyId = config.credentials?.accessKeyId;
    this.autoCreateBucket = config.autoCreateBucket;
    this.queueSize = config.queueSize;
    this.partBuffers = new PartBuffers(config.partSizeBytes, config.maxPartsInFlight);
    this.location = `s3://${config.bucket}/${config.prefix} @ ${this.endpointLabel}`;

    // Every part of every concurrent upload holds a socket: keep them alive and allow plenty.
    const agentOptions = { keepAlive: true, maxSockets: 64 };
    const tlsOptions = {
      rejectUnauthorized: config.tlsVerify,
      // `ca` replaces Node's bundle; keep the public roots so an extra CA only adds trust
      ...(config.caFile !== undefined && { ca: [...rootCertificates, readFileSync(config.caFile, 'utf8')] }),
    };
    const connectionTimeoutMs = 5_000;
    // idle socket, not whole request: a 10 GiB download may take long but never stalls a minute
    const socketTimeoutMs = 60_000;
    const nodeHandler = new NodeHttpHandler({
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent({ ...agentOptions, ...tlsOptions }),
      connectionTimeout: connectionTimeoutMs,
      socketTimeout: socketTimeoutMs,
    });
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      // a copy: the SDK tags the credentials object it is given, and Config is frozen
      credentials: config.credentials && { ...config.credentials },
      // The default since SDK 3.729 streams bodies as aws-chunked with a trailing CRC32, which
      // Ceph 16 and older MinIO reject; checksums only where the API demands them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // GetObject bodies read straight from the socket; everything else through node:http
      requestHandler: new S3HttpHandler(nodeHandler, { connectionTimeoutMs, socketTimeoutMs, tls: tlsOptions }),
    });
    if (!config.signPayload) sendUnsignedPayloads(this.client);
    if (opts.observeCall) observeCalls(this.client, opts.observeCall);
    this.signer = signingClient(config);
  }

  /** An assembled file's key is made of its id without the time (s3-assembly.ts). */
  private key(id: string): string {
    const tail = tailOf(id);
    return this.prefix + (tail === undefined ? id : assembledKey(tail));
  }

  /** HeadBucket, with every failure put in words an operator can act on; false when it is missing. */
  private async bucketExists(): Promise<boolean> {
    const where = `bucket ${this.bucket} at endpoint ${this.endpointLabel}`;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (err) {
      const status = statusOf(err);
      if (isNetworkError(err)) {
        throw new Error(
          `S3 endpoint ${this.endpointLabel} cannot be reached (${(err as SdkError).code ?? nameOf(err)})`,
          { cause: err },
        );
      }
      if (
        status === 403 ||
        ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(nameOf(err) ?? '')
      ) {
        throw new Error(
          `access denied to ${where} for access key id ${this.accessKeyId ?? '(AWS default credential chain)'}: ` +
            'check the access key id, the secret access key and the bucket policy',
        );
      }
      if (status !== 404) throw new Error(`cannot check ${where}: ${nameOf(err)} (HTTP ${status})`, { cause: err });
      return false;
    }
  }

  private bucketMissing(): Error {
    return new Error(`bucket ${this.bucket} not found at endpoint ${this.endpointLabel}`);
  }

  async init(): Promise<void> {
    if (await this.bucketExists()) return;
    const where = `bucket ${this.bucket} at endpoint ${this.endpointLabel}`;
    if (!this.autoCreateBucket) throw this.bucketMissing();
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          // us-east-1 is the one region that must not be named; S3-compatible servers take any name
          ...(this.region !== 'us-east-1' && {
            CreateBucketConfiguration: { LocationConstraint: this.region as BucketLocationConstraint },
          }),
        }),
      );
    } catch (err) {
      // another replica created it first
      if (nameOf(err) === 'BucketAlreadyOwnedByYou') return;
      throw new Error(`cannot create ${where}: ${nameOf(err)}`, { cause: err });
    }
  }

  async put(id: string, body: Readable, meta?: BlobMeta | Promise<BlobMeta | undefined>): Promise<StoredBlob> {
    const known = meta instanceof Promise ? undefined : meta;
    const written = await this.write(id, body, {
      ...(known && { metadata: toUserMetadata(known) }),
      // a body that fits in one PutObject can still carry metadata that comes after it: no tagging request
      ...(meta instanceof Promise && {
        lateMetadata: async () => {
          const late = await meta;
          return late && toUserMetadata(late);
        },
      }),
    });
    const metaStored = known !== undefined || written.lateMetadataStored;
    // a multipart upload's ETag comes from a HEAD: Ceph 16 answers CompleteMultipartUpload's empty
    if (written.etag === undefined) return { ...(await this.stat(id)), metaStored };
    return { size: written.size, etag: written.etag, metaStored };
  }

  /** Streams `body` to the object `id` (or into a multipart upload of someone else's). */
  private async write(
    id: string,
    body: Readable,
    opts: {
      metadata?: Record<string, string>;
      lateMetadata?: () => Promise<Record<string, string> | undefined>;
      into?: PartsInto;
    },
  ): Promise<Written> {
    let bodyError: unknown;
    const onBodyError = (err: unknown) => (bodyError ??= err);
    body.on('error', onBodyError);
    try {
      return await uploadStream(
        this.client,
        {
          Bucket: this.bucket,
          Key: this.key(id),
          ContentType: 'application/octet-stream',
          ...(opts.metadata && { Metadata: opts.metadata }),
        },
        body,
        { buffers: this.partBuffers, queueSize: this.queueSize, lateMetadata: opts.lateMetadata, into: opts.into },
      );
    } catch (err) {
      // Whatever failed, the producer must not wait forever on a body nobody reads any more.
      body.destroy();
      // The body's error is the cause even if aborting the multipart upload failed on top of it.
      if (bodyError !== undefined) throw bodyError;
      throw translate(err);
    } finally {
      body.off('error', onBodyError);
    }
  }

  async putMeta(id: string, meta: BlobMeta): Promise<void> {
    try {
      await this.client.send(
        new PutObjectTaggingCommand({ Bucket: this.bucket, Key: this.key(id), Tagging: { TagSet: toTags(meta) } }),
      );
    } catch (err) {
      throw translate(err, id);
    }
  }

  async get(id: string, range?: ByteRange): Promise<BlobRead> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(id),
          ...(range && { Range: `bytes=${range.start}-${range.end}` }),
        }),
      );
      // "bytes 0-0/1234": the total is after the slash
      const total = res.ContentRange !== undefined ? Number(res.ContentRange.split('/')[1]) : res.ContentLength;
      return { stream: res.Body as Readable, size: total ?? 0, etag: res.ETag ?? '' };
    } catch (err) {
      throw translate(err, id);
    }
  }

  async stat(id: string): Promise<BlobStat> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(id) }));
      return { size: res.ContentLength ?? 0, etag: res.ETag ?? '' };
    } catch (err) {
      throw translate(err, id);
    }
  }

  async delete(id: string): Promise<void> {
    await this.deleteKey(this.key(id));
  }

  private async deleteKey(key: string): Promise<void> {
    try {
      // S3 answers 204 for a missing key too; on a versioned bucket this adds a delete marker
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const translated = translate(err, key);
      if (!(translated instanceof BlobNotFoundError)) throw translated;
    }
  }

  async *list(): AsyncIterable<{ id: string; meta: BlobMeta }> {
    for await (const page of this.objectPages(this.prefix)) {
      const objects = this.fileObjects(page);
      // one or two requests per object: a few at a time, so a reindex of many files is not serial
      const metas = await mapLimit(objects, 8, (o) => this.readMeta(o.key, o.size));
      for (const [i, o] of objects.entries()) {
        const meta = metas[i];
        if (meta) yield { id: o.idAt(meta.createdAt), meta };
      }
    }
  }

  /**
   * The file blobs of one listing page (not parts, not foreign keys), with their ids: the key, or
   * for an assembled file the key and its creation time.
   */
  private fileObjects(
    page: _Object[],
  ): { key: string; size: number; modified: Date; idAt: (createdAt: number) => string }[] {
    return page.flatMap((o) => {
      const key = o.Key ?? '';
      const name = key.slice(this.prefix.length);
      const tail = ASSEMBLED_KEY.exec(name)?.[1];
      // a key that reads as an assembled file's id could never be served: key() maps such ids elsewhere
      const plain = FILE_KEY.test(name) && tailOf(name) === undefined;
      if (!plain && tail === undefined) return [];
      const idAt = (createdAt: number) => (tail === undefined ? name : assembledFileId(tail, createdAt));
      return [{ key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(), idAt }];
    });
  }

  /** The objects under `prefix` (a key prefix, already including this.prefix), one listing page at a time. */
  private async *objectPages(prefix: string): AsyncIterable<_Object[]> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
        );
      } catch (err) {
        throw translate(err);
      }
      yield page.Contents ?? [];
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** The rebuild metadata on the object at `key` (the whole key), if any. */
  private async readMeta(key: string, size: number): Promise<BlobMeta | undefined> {
    const target = { Bucket: this.bucket, Key: key };
    try {
      // Tags first: when an object has both forms, putMeta (tags) was the later write.
      const tagging = await this.client.send(new GetObjectTaggingCommand(target));
      const fromTagging = fromTags(tagging.TagSet ?? [], size);
      if (fromTagging) return fromTagging;
      const head = await this.client.send(new HeadObjectCommand(target));
      return fromUserMetadata(head.Metadata ?? {}, size);
    } catch (err) {
      const translated = translate(err, key);
      // deleted between the listing and now
      if (translated instanceof BlobNotFoundError) return undefined;
      throw translated;
    }
  }

  /** File objects without rebuild metadata (the bytes came first, the process died before putMeta) and stale multipart uploads. */
  async pruneLeftovers(before: Date): Promise<number> {
    let removed = await this.releaseStale(before);
    for await (const page of this.objectPages(this.prefix)) {
      const candidates = this.fileObjects(page).filter((o) => o.modified < before);
      const orphans = await mapLimit(candidates, 8, async (o) =>
        (await this.readMeta(o.key, o.size)) === undefined ? [o.key] : [],
      );
      for (const key of orphans.flat()) {
        await this.deleteKey(key);
        removed++;
      }
    }
    return removed;
  }

  async ping(): Promise<void> {
    if (!(await this.bucketExists())) throw this.bucketMissing();
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.signer.destroy();
  }

  /** Relative to the prefix, like a file id, so put(), delete() and key() serve parts too. */
  private partId(uploadId: string, partId: string): string {
    return `${PARTS_DIR}${uploadId}/${partId}`;
  }

  /** Each part is an object of its own (aborted on failure like any put). */
  async putPart(uploadId: string, partId: string, body: Readable): Promise<number> {
    return (await this.put(this.partId(uploadId, partId), body)).size;
  }

  /** The key of the file an upload's parts go into: the key of its assembledFileId, whatever the time. */
  private assemblyKey(uploadId: string): string {
    return this.prefix + assembledKey(assemblyTail(uploadId));
  }

  /** The upload's file, one multipart upload on its final key, open while the parts come. */
  async openAssembly(uploadId: string, bytes: number, maxPartBytes: number): Promise<string | undefined> {
    // every part would be under S3's smallest part and stored on its own
    if (bytes < S3_LIMITS.minPart) return undefined;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.assemblyKey(uploadId),
          ContentType: 'application/octet-stream',
        }),
      );
      return formatHandle({ block: blockFor(maxPartBytes, this.partBuffers.size), multipartId: created.UploadId! });
    } catch (err) {
      throw translate(err);
    }
  }

  async putPartInto(
    uploadId: string,
    partId: string,
    body: Readable,
    { assembly, slot, maxBytes }: { assembly: string; slot: number; maxBytes: number },
  ): Promise<{ bytes: number; slotted: boolean }> {
    const { block, multipartId } = parseHandle(assembly);
    // A slot holds `block` parts of this store's part size: less than the upload was opened for
    // if the part size has grown smaller since, or the part limit larger.
    if (slot >= slotCount(block) || maxBytes > block * this.partBuffers.size)
      return { bytes: await this.putPart(uploadId, partId, body), slotted: false };
    const written = await this.write(this.partId(uploadId, partId), body, {
      into: {
        Key: this.assemblyKey(uploadId),
        UploadId: multipartId,
        firstPartNumber: firstPartNumber(slot, block),
        maxParts: block,
        minPart: S3_LIMITS.minPart,
      },
    });
    return { bytes: written.size, slotted: written.sentInto };
  }

  assembledFileId(uploadId: string, createdAt: number): string {
    return assembledFileId(assemblyTail(uploadId), createdAt);
  }

  async discardAssembly(uploadId: string, assembly: string): Promise<void> {
    const Key = this.assemblyKey(uploadId);
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: parseHandle(assembly).multipartId }))
      .catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(translate(err))));
    await this.deleteKey(Key);
  }

  /**
   * Without an assembly, or when the parts cannot complete it as it is, the file is built by
   * copies (copyParts). With one, the multipart upload the parts went into becomes the file as it
   * is when they are listed in slot order; otherwise it is first completed with every slotted part
   * in slot order (the parts "as they came"), and the file is then copied together from that
   * object and the parts stored on their own, onto the same key. A complete that finds the
   * multipart upload gone takes over from where the one before it stopped.
   */
  async assemble(
    targetId: string,
    uploadId: string,
    parts: readonly PartRef[],
    meta: BlobMeta,
    md5?: string,
    assembly?: string,
  ): Promise<BlobStat> {
    const apart = (partId: string) => ({ id: this.partId(uploadId, partId), offset: 0 });
    if (assembly === undefined) return this.copyParts(targetId, parts, meta, md5, apart);
    if (tailOf(targetId) !== assemblyTail(uploadId)) throw new Error(`${targetId} is not the file of ${uploadId}`);
    const { block, multipartId } = parseHandle(assembly);
    const target = { Bucket: this.bucket, Key: this.key(targetId) };
    const slotted = parts.filter((p) => p.slot !== undefined).sort((a, b) => a.slot! - b.slot!);
    const sent = await this.sentParts(target.Key, multipartId);
    const completeWith = async (list: { PartNumber: number; ETag: string }[]) => {
      try {
        await this.client.send(
          new CompleteMultipartUploadCommand({ ...target, UploadId: multipartId, MultipartUpload: { Parts: list } }),
        );
      } catch (err) {
        throw translate(err);
      }
    };
    if (sent !== undefined) {
      const numbered = slotted.flatMap((p) => slotParts(sent, p, block));
      if (md5 === undefined && completesAsItIs(parts)) {
        const last = parts.at(-1)!;
        if (last.slot === undefined) {
          const copy = { kind: 'copy' as const, slice: { partId: last.id, start: 0, end: last.bytes } };
          const ETag = await this.uploadSegment(target, multipartId, LAST_PART_NUMBER, apart, copy);
          numbered.push({ PartNumber: LAST_PART_NUMBER, ETag });
        }
        await completeWith(numbered);
        await this.putMeta(targetId, meta);
        return this.stat(targetId);
      }
      if (numbered.length > 0) await completeWith(numbered);
      else await this.discardAssembly(uploadId, assembly);
    } else {
      const there = await this.stat(targetId).catch((err: unknown) =>
        err instanceof BlobNotFoundError ? undefined : Promise.reject(err),
      );
      if (there && (await this.readMeta(target.Key, there.size))) {
        // assembled by a complete whose answer never came: it is the file
        await this.putMeta(targetId, meta);
        return there;
      }
      if (!there && slotted.length > 0) {
        throw new Error(`the parts of ${uploadId} sent into its file are no longer in the store`);
      }
    }
    const offsets = new Map<string, number>();
    let offset = 0;
    for (const p of slotted) {
      offsets.set(p.id, offset);
      offset += p.bytes;
    }
    return this.copyParts(targetId, parts, meta, md5, (partId) => {
      const at = offsets.get(partId);
      return at === undefined ? apart(partId) : { id: targetId, offset: at };
    });
  }

  /** Part number -> ETag and size of what the multipart upload holds; undefined once it is gone. */
  private async sentParts(Key: string, UploadId: string): Promise<Map<number, SentPart> | undefined> {
    const sent = new Map<number, SentPart>();
    let marker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListPartsCommand({ Bucket: this.bucket, Key, UploadId, PartNumberMarker: marker }),
        );
        for (const p of page.Parts ?? []) sent.set(p.PartNumber!, { ETag: p.ETag ?? '', size: p.Size ?? 0 });
        marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
      } while (marker !== undefined);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw translate(err);
    }
    return sent;
  }

  /**
   * The file as one multipart upload on its final key, with its rebuild metadata, built as
   * planSegments() says from parts found where `locate` says (an object and an offset in it): big
   * stretches by UploadPartCopy (no bytes through the gateway), runs of small ones streamed into
   * one UploadPart. With an md5 the parts are also read once, in order, while the copies run: that
   * read-back is the only extra cost of an md5, and a mismatch aborts the multipart upload before
   * CompleteMultipartUpload makes anything visible.
   */
  private async copyParts(
    targetId: string,
    parts: readonly PartRef[],
    meta: BlobMeta,
    md5: string | undefined,
    locate: Locate,
  ): Promise<BlobStat> {
    const open = (slice: PartSlice) => this.openSlice(locate, slice);
    const segments = planSegments(parts);
    if (segments.length === 0 || (segments.length === 1 && segments[0]!.kind === 'stream')) {
      // under 5 MiB in all: one ordinary put
      return this.put(targetId, withMd5Check(concatSlices(wholeParts(parts), open), md5), meta);
    }
    const target = { Bucket: this.bucket, Key: this.key(targetId) };
    let multipartId: string | undefined;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          ...target,
          ContentType: 'application/octet-stream',
          Metadata: toUserMetadata(meta),
        }),
      );
      multipartId = created.UploadId!;
      const uploading = mapLimit([...segments.entries()], this.queueSize, ([i, segment]) =>
        this.uploadSegment(target, multipartId!, i + 1, locate, segment),
      );
      const checking =
        md5 === undefined ? Promise.resolve() : drain(withMd5Check(concatSlices(wholeParts(parts), open), md5));
      const [etags, checked] = await Promise.allSettled([uploading, checking]);
      if (checked.status === 'rejected') throw checked.reason;
      if (etags.status === 'rejected') throw etags.reason;
      await this.client.send(
        new CompleteMultipartUploadCommand({
          ...target,
          UploadId: multipartId,
          MultipartUpload: { Parts: etags.value.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      );
    } catch (err) {
      if (multipartId !== undefined) {
        await this.client
          .send(new AbortMultipartUploadCommand({ ...target, UploadId: multipartId }))
          .catch(() => undefined);
      }
      throw err instanceof ChecksumMismatchError ? err : translate(err);
    }
    // Not the ETag from CompleteMultipartUpload: Ceph 16 answers it empty.
    return this.stat(targetId);
  }

  private async uploadSegment(
    target: { Bucket: string; Key: string },
    multipartId: string,
    partNumber: number,
    locate: Locate,
    segment: Segment,
  ): Promise<string> {
    const part = { ...target, UploadId: multipartId, PartNumber: partNumber };
    if (segment.kind === 'copy') {
      const { partId, start, end } = segment.slice;
      const { id, offset } = locate(partId);
      const res = await this.client.send(
        new UploadPartCopyCommand({
          ...part,
          CopySource: `${this.bucket}/${encodeURIComponent(this.key(id))}`,
          CopySourceRange: `bytes=${offset + start}-${offset + end - 1}`,
        }),
      );
      return res.CopyPartResult?.ETag ?? '';
    }
    // A run is at most 5 MiB (planSegments): read it whole, so a missing part fails here as a
    // rejection and the SDK can retry the request; at most queueSize x 5 MiB in memory.
    const chunks: Buffer[] = [];
    for await (const chunk of concatSlices(segment.slices, (slice) => this.openSlice(locate, slice)))
      chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const res = await this.client.send(new UploadPartCommand({ ...part, Body: body }));
    return res.ETag ?? '';
  }

  private async openSlice(locate: Locate, slice: PartSlice): Promise<Readable> {
    const { id, offset } = locate(slice.partId);
    return (await this.get(id, { start: offset + slice.start, end: offset + slice.end - 1 })).stream;
  }

  async deleteParts(uploadId: string, partIds?: readonly string[]): Promise<void> {
    if (partIds !== undefined) {
      await mapLimit([...partIds], 8, (partId) => this.delete(this.partId(uploadId, partId)));
      return;
    }
    const dir = this.key(this.partId(uploadId, ''));
    // parts still being written are multipart uploads of their own
    await this.abortMultipartUploads(dir, () => true);
    for await (const page of this.objectPages(dir)) {
      await mapLimit(page, 8, (o) => this.delete((o.Key ?? '').slice(this.prefix.length)));
    }
  }

  /**
   * Multipart uploads of ours (file keys and parts) opened before `before` and never finished: a
   * process that crashed mid-put or mid-assemble leaves them, holding storage nobody can see.
   */
  async releaseStale(before: Date): Promise<number> {
    return this.abortMultipartUploads(this.prefix, (key, initiated) => {
      const rest = key.slice(this.prefix.length);
      return (
        (FILE_KEY.test(rest) || ASSEMBLED_KEY.test(rest) || rest.startsWith(PARTS_DIR)) &&
        initiated !== undefined &&
        initiated < before
      );
    });
  }

  private async abortMultipartUploads(
    prefix: string,
    shouldAbort: (key: string, initiated: Date | undefined) => boolean,
  ): Promise<number> {
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const u of page.Uploads ?? []) {
          if (!shouldAbort(u.Key ?? '', u.Initiated)) continue;
          // another sweeper (a replica) may have aborted it first: Ceph says NoSuchKey, AWS NoSuchUpload
          await this.client
            .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }))
            .catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err)));
          aborted++;
        }
        [keyMarker, uploadIdMarker] = page.IsTruncated
          ? [page.NextKeyMarker, page.NextUploadIdMarker]
          : [undefined, undefined];
      } while (keyMarker !== undefined);
    } catch (err) {
      throw translate(err);
    }
    return aborted;
  }

  /**
   * A presigned GetObject URL of the blob, answered with the given Content-Type and
   * Content-Disposition (response-* overrides, which S3 honours on signed requests only).
   */
  async presignGet(id: string, opts: PresignGetOptions): Promise<string> {
    try {
      return await getSignedUrl(
        this.signer,
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(id),
          ResponseContentType: opts.contentType,
          ResponseContentDisposition: opts.contentDisposition,
        }),
        { expiresIn: opts.expiresInSeconds },
      );
    } catch (err) {
      // only resolving credentials (the AWS chain) can fail here
      throw translate(err);
    }
  }
}

/**
 * The client presigned URLs are signed with. SigV4 signs the Host header, so it must name the
 * endpoint clients reach (FILES_S3_PUBLIC_ENDPOINT), which may not be the one the gateway uses. Its
 * HTTP handler stays idle: signing never sends a request.
 */
function signingClient(config: S3Config): S3Client {
  return new S3Client({
    endpoint: config.publicEndpoint ?? config.endpoint,
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    // a copy: the SDK tags the credentials object it is given, and Config is frozen
    credentials: config.credentials && { ...config.credentials },
    // no x-amz-checksum-mode in the URL: Ceph 16 and older MinIO do not know it
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

async function drain(stream: Readable): Promise<void> {
  for await (const _chunk of stream);
}

/**
 * Times every S3 API call the client makes (put's CreateMultipartUpload, each UploadPart,
 * CompleteMultipartUpload... each count) by command name and outcome.
 */
function observeCalls(client: S3Client, observe: StoreCallObserver): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const start = performance.now();
      let outcome = 'success';
      try {
        return await next(args);
      } catch (err) {
        const status = statusOf(err);
        outcome = isNetworkError(err)
          ? 'network_error'
          : status !== undefined && status < 500
            ? 'client_error'
            : 'server_error';
        throw err;
      } finally {
        observe(context.commandName ?? 'unknown', outcome, (performance.now() - start) / 1000);
      }
    },
    { step: 'initialize', name: 'filesGatewayStoreCallMetrics' },
  );
}

/** Where a part's bytes are: in the object `id` (relative to the prefix), from `offset` on. */
type Locate = (partId: string) => { id: string; offset: number };

interface SentPart {
  ETag: string;
  size: number;
}

/**
 * The parts S3 holds in `part`'s slot, in order, as CompleteMultipartUpload lists them. They must
 * add up to the part's bytes: a slot is sent into once, by the request that recorded the part.
 */
function slotParts(sent: Map<number, SentPart>, part: PartRef, block: number): { PartNumber: number; ETag: string }[] {
  const first = firstPartNumber(part.slot!, block);
  const found: { PartNumber: number; ETag: string }[] = [];
  let bytes = 0;
  for (let n = first; n < first + block; n++) {
    const p = sent.get(n);
    if (p === undefined) continue;
    found.push({ PartNumber: n, ETag: p.ETag });
    bytes += p.size;
  }
  if (bytes !== part.bytes)
    throw new Error(`part ${part.id} has ${part.bytes} bytes but its slot ${part.slot} holds ${bytes} in the store`);
  return found;
}

/** Map with at most `limit` calls in flight, results in input order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
