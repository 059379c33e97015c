/** One file's row. Times are Unix seconds, as the API shows them. */
export interface FileRecord {
  id: string;
  filename: string;
  purpose: string;
  bytes: number;
  createdAt: number;
  expiresAt: number | null;
}

/** A keyset position: lists are totally ordered by (createdAt, id). */
export interface Cursor {
  createdAt: number;
  id: string;
}

export interface ListQuery {
  order: 'asc' | 'desc';
  limit: number;
  /** Only rows strictly after this position in `order`. */
  after?: Cursor;
  purpose?: string;
  /** Rows with expiresAt <= now are not listed. */
  now: number;
}

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
  list(query: ListQuery): Promise<FileRecord[]>;
  /** True when a row was removed. */
  delete(id: string): Promise<boolean>;
  /** Up to `limit` rows whose expiresAt <= now, oldest expiry first. */
  expired(now: number, limit: number): Promise<FileRecord[]>;
  /** Number of rows and their total bytes, from totals kept up to date on every write: O(1). */
  stats(): Promise<{ files: number; bytes: number }>;
  /** Cheap round trip proving the catalog answers (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
