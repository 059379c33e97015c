/** One file's row. Times are Unix seconds, as the API shows them. */
export interface FileRecord {
  id: string;
  /** Who owns the file ('' for the default tenant: no API keys, or a key without a tenant). */
  tenant: string;
  filename: string;
  purpose: string;
  bytes: number;
  createdAt: number;
  expiresAt: number | null;
}

/**
 * A JSON object made from a FileRecord, declared as data: each key, in order, takes a field of the
 * record or a constant. The API declares its list's file objects this way, and the catalog renders
 * them (Catalog.list).
 */
export type RecordShape = ReadonlyArray<
  readonly [key: string, source: { field: keyof FileRecord } | { constant: string | null }]
>;

/** The expiresAt of a row claimed for removal (Catalog.claimRemoval): expired at the epoch. */
export const REMOVAL_CLAIMED = 0;

/** A keyset position: lists are totally ordered by (createdAt, id). */
export interface Cursor {
  createdAt: number;
  id: string;
}

export interface ListQuery {
  /** Only this tenant's files. */
  tenant: string;
  order: 'asc' | 'desc';
  limit: number;
  /**
   * Only rows strictly after the row `after.id` in `order`, at that row's own (createdAt, id) when
   * this tenant has it; `after.createdAt` places a cursor whose row is gone (deleted between pages).
   */
  after?: Cursor;
  purpose?: string;
  /** Rows with expiresAt <= now are not listed. */
  now: number;
}

export type UploadStatus = 'pending' | 'completed' | 'cancelled' | 'expired';

/** An Uploads API upload. Times are Unix seconds. */
export interface UploadRecord {
  id: string;
  tenant: string;
  filename: string;
  purpose: string;
  /** The size the client declared. */
  bytes: number;
  mimeType: string;
  createdAt: number;
  expiresAt: number;
  /** expires_after of the file it becomes (null: never expires). */
  fileTtlSeconds: number | null;
  /** As stored: a pending upload past expiresAt is expired even before the sweeper marks it. */
  status: UploadStatus;
  fileId: string | null;
  /**
   * The store's handle of the write its parts go straight into (S3: a multipart upload on the
   * file's own key, PartStore.openAssembly); absent when parts are stored apart.
   */
  assembly?: string;
}

export interface UploadPartRecord {
  id: string;
  uploadId: string;
  bytes: number;
  createdAt: number;
  /** The slot of the upload's assembly the part went into (Catalog.reservePartSlot); absent: stored apart. */
  slot?: number;
}

export type AddPartOutcome = 'added' | 'not_pending' | 'over_bytes' | 'too_many_parts';

/**
 * The catalog port. Async even where the driver is synchronous, so SQLite and PostgreSQL share one
 * contract. Implementations translate driver failures into 503 GatewayErrors.
 */
export interface Catalog {
  readonly kind: string;
  readonly location: string;
  init(): Promise<void>;
  /** Insert a new row, or replace the row with the same id (reindex is idempotent). */
  upsert(file: FileRecord): Promise<void>;
  get(id: string): Promise<FileRecord | undefined>;
  /**
   * A page of rows, each rendered by the catalog as the JSON text JSON.stringify writes for the
   * object `shape` makes of it. A page then costs the gateway no object per row and no serialiser
   * pass (docs/decisions/0014-sqlite-renders-list-pages.md and
   * docs/decisions/0017-postgresql-pages-rendered-in-the-gateway.md).
   */
  list(query: ListQuery, shape: RecordShape): Promise<string[]>;
  /**
   * Claim the row for removal: true for exactly one caller however many ask at once, in any process
   * sharing the catalog; false for every other, and for a row that is not there. The claim is one
   * conditional write that expires the row at the epoch (expiresAt = REMOVAL_CLAIMED, 0), so from
   * then on every reader treats the file as gone (lists skip it, the domain answers 404) while its
   * bytes are removed, and expired() returns it first, so the sweeper finishes a removal its
   * claimant did not (docs/architecture.md, invariant 2).
   */
  claimRemoval(id: string): Promise<boolean>;
  /** True when a row was removed. */
  delete(id: string): Promise<boolean>;
  /** Up to `limit` rows whose expiresAt <= now (claimed ones included), oldest expiry first. */
  expired(now: number, limit: number): Promise<FileRecord[]>;
  /** Number of rows and their total bytes, from totals kept up to date on every write: O(1). */
  stats(): Promise<{ files: number; bytes: number }>;
  /** Cheap round trip proving the catalog answers (readiness). */
  ping(): Promise<void>;
  /**
   * Run `fn` unless work of the same name is already running in any process sharing this catalog;
   * undefined when skipped. A crashed holder's claim ends with it (PostgreSQL: an advisory lock on a
   * session of its own). For background work that must run once across replicas, like the sweeper.
   */
  runExclusive<T>(name: string, fn: () => Promise<T>): Promise<T | undefined>;
  close(): Promise<void>;

  insertUpload(upload: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Record a stored part, atomically with the checks that make it acceptable: the upload is pending
   * and unexpired at `now`, the parts' total stays within its declared bytes and the count within
   * `maxParts`. (PostgreSQL: lock the upload row, SELECT ... FOR UPDATE, in the same transaction.)
   */
  addUploadPart(part: UploadPartRecord, now: number, maxParts: number): Promise<AddPartOutcome>;
  uploadParts(uploadId: string): Promise<UploadPartRecord[]>;
  /**
   * The next unused slot of the upload's assembly (0, 1, 2...), each handed out once across every
   * process sharing the catalog, whatever becomes of the part that takes it.
   */
  reservePartSlot(uploadId: string): Promise<number>;
  /** pending -> cancelled; false when the upload was not pending. */
  cancelUpload(id: string): Promise<boolean>;
  /**
   * In one transaction: pending -> completed with the file's id, and the file's row. False, and
   * nothing written, when the upload was no longer pending.
   */
  completeUpload(id: string, file: FileRecord): Promise<boolean>;
  /** Up to `limit` uploads holding parts to release: completed or cancelled, or pending past expiresAt <= now. */
  uploadsToRelease(now: number, limit: number): Promise<UploadRecord[]>;
  /** Its parts are gone from the store: drop their rows; a pending upload becomes expired. */
  markUploadReleased(id: string): Promise<void>;
  /** Forget released uploads whose expiresAt <= before; returns how many. */
  forgetUploads(before: number): Promise<number>;
}
