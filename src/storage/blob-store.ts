import type { Readable } from 'node:stream';

/**
 * What a blob carries about itself so the catalog can be rebuilt from the store alone
 * (S3 object metadata/tags, a JSON sidecar on the fs store).
 */
export interface BlobMeta {
  /** The owning tenant ('' by default), so reindex restores isolation too. */
  tenant: string;
  filename: string;
  purpose: string;
  createdAt: number;
  expiresAt: number | null;
  bytes: number;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface BlobRead {
  stream: Readable;
  /** Size of the whole blob, not of the range. */
  size: number;
  etag: string;
}

export interface BlobStat {
  size: number;
  etag: string;
}

export interface StoredBlob extends BlobStat {
  /** The blob carries the metadata given to put(). */
  metaStored: boolean;
}

/**
 * The storage port. Minimal on purpose: the domain owns ordering and cleanup, a store only moves
 * bytes. Implementations translate their own errors: a missing blob is BlobNotFoundError, an
 * unreachable backend is a 503 GatewayError.
 */
export interface BlobStore {
  /** Short name for logs and metrics: "fs", "s3". */
  readonly kind: string;
  /** Where the bytes go, for the start-up log (never includes credentials). */
  readonly location: string;

  /** Check the backend is reachable and ready (create what is missing if configured to). */
  init(): Promise<void>;

  /**
   * Stream `body` into the blob `id`. The blob becomes visible only once the whole body has been
   * written; if the body errors or `signal` aborts, nothing is left behind and the promise rejects
   * with the body's error. `meta` is attached when already known. When it becomes known only after
   * the body (form fields that follow the file), it may be given as a promise, which resolves to
   * undefined if it never comes: a store that can still attach it without another request waits
   * for it. Unless the answer says `metaStored`, call putMeta. Once it resolves, the blob (and its
   * meta) survive a crash of the machine: the caller writes the catalog row next, and a row must not
   * outlive its bytes.
   */
  put(id: string, body: Readable, meta?: BlobMeta | Promise<BlobMeta | undefined>): Promise<StoredBlob>;

  /** Attach (or replace) the rebuild metadata of an existing blob, as durably as put(). */
  putMeta(id: string, meta: BlobMeta): Promise<void>;

  /** Open the blob (or one inclusive byte range of it) for streaming. */
  get(id: string, range?: ByteRange): Promise<BlobRead>;

  stat(id: string): Promise<BlobStat>;

  /** Remove the blob and its metadata; removing a missing blob is not an error. */
  delete(id: string): Promise<void>;

  /** Every blob with complete metadata, for reindex. Blobs without metadata are skipped. */
  list(): AsyncIterable<{ id: string; meta: BlobMeta }>;

  /**
   * Remove what a killed process left behind that no row can point at, when older than `before`:
   * unfinished writes (temp files, S3 multipart uploads) and blobs whose metadata never arrived.
   * A full scan (for `reindex --prune`); returns how many things were removed.
   */
  pruneLeftovers(before: Date): Promise<number>;

  /** Cheap round trip proving the backend answers (readiness); no side effects. */
  ping(): Promise<void>;

  /** Release connections and handles. */
  close(): Promise<void>;

  /** Stores that can hold the parts of an Uploads API upload apart from files (both built-in ones do). */
  readonly parts?: PartStore;

  /**
   * Stores whose blobs clients can fetch themselves (S3): a URL that reads the blob `id` without
   * credentials until it expires. Signing is local: it proves neither that the blob exists nor that
   * the backend answers, so callers check both first.
   */
  presignGet?(id: string, opts: PresignGetOptions): Promise<string>;
}

export interface PresignGetOptions {
  /** How long the URL works, in whole seconds. */
  expiresInSeconds: number;
  /** The headers the backend answers the URL with, so the answer looks like the gateway's own. */
  contentType?: string;
  contentDisposition?: string;
}

/** One stored part, in the order the file is to be assembled. */
export interface PartRef {
  id: string;
  bytes: number;
  /** The slot of the upload's assembly it went into (PartAssembly.putPartInto); absent: stored on its own. */
  slot?: number;
}

/**
 * Parts of an upload (the OpenAI Uploads API), tusd style: each part is stored on its own as it
 * arrives, in any order, and the file is assembled from them at the end. Parts are never files:
 * list() and reindex do not see them.
 */
export interface PartStore {
  /** Stream one part in; like put(), durable once it resolves, and nothing is left behind if the body fails. Resolves to its size. */
  putPart(uploadId: string, partId: string, body: Readable): Promise<number>;

  /**
   * Make the blob `targetId` from `parts` in this order, with its rebuild metadata. With `md5`, a
   * ChecksumMismatchError rejects before the blob becomes visible when the bytes' MD5 (hex) differs.
   * On failure nothing is left behind; the parts stay. With an `assembly` (PartAssembly), targetId
   * is its assembledFileId; a failure may leave the blob without its metadata, from which a later
   * call still assembles, and a blob with its metadata (the caller failed after) is taken as done.
   */
  assemble(
    targetId: string,
    uploadId: string,
    parts: readonly PartRef[],
    meta: BlobMeta,
    md5?: string,
    assembly?: string,
  ): Promise<BlobStat>;

  /** Remove the given parts of an upload, or, without ids, everything stored for it (parts, writes in progress). */
  deleteParts(uploadId: string, partIds?: readonly string[]): Promise<void>;

  /** Writes a crashed process left open since before `before` (S3 multipart uploads); returns how many were released. */
  releaseStale?(before: Date): Promise<number>;

  /** Stores that can send parts straight into the file they become (S3). */
  readonly assembly?: PartAssembly;
}

/**
 * Parts sent straight into the file they become, so that complete copies nothing when the parts
 * are listed in the order they came: on S3, one multipart upload on the file's own key, each part
 * taking its own stretch of part numbers (a slot, handed out by the catalog). Parts listed in
 * another order, or with md5, are assembled as PartStore.assemble always does, from the file as
 * the parts came. `assembly` is the store's handle of that write, kept with the upload.
 */
export interface PartAssembly {
  /** Open the write for an upload of `bytes` whose parts are at most `maxPartBytes`; undefined when not worth it. */
  openAssembly(uploadId: string, bytes: number, maxPartBytes: number): Promise<string | undefined>;

  /**
   * Stream one part of at most `maxBytes` into `slot` of the assembly; a part too short for a slot
   * (under S3's 5 MiB), one that might not fit in it, or one beyond the slots there are is stored
   * on its own as putPart does. Bytes sent into a slot stay there until the assembly completes or
   * is discarded, whatever becomes of the request.
   */
  putPartInto(
    uploadId: string,
    partId: string,
    body: Readable,
    into: { assembly: string; slot: number; maxBytes: number },
  ): Promise<{ bytes: number; slotted: boolean }>;

  /**
   * The id of the file the upload becomes, created at `createdAt` (Unix seconds): its bytes are
   * where the assembly writes them, so the id is the store's to make (give it to assemble).
   */
  assembledFileId(uploadId: string, createdAt: number): string;

  /** Abort the assembly and remove what it wrote, for an upload that will not complete. */
  discardAssembly(uploadId: string, assembly: string): Promise<void>;
}
