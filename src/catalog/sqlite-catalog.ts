import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Catalog, FileRecord, ListQuery } from './catalog.js';

interface Row {
  id: string;
  filename: string;
  purpose: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
}

const toRecord = (r: Row): FileRecord => ({
  id: r.id,
  filename: r.filename,
  purpose: r.purpose,
  bytes: r.bytes,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  id         TEXT PRIMARY KEY,
  filename   TEXT NOT NULL,
  purpose    TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS files_by_time ON files (created_at, id);
CREATE INDEX IF NOT EXISTS files_by_purpose_time ON files (purpose, created_at, id);
CREATE INDEX IF NOT EXISTS files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
-- Running totals for the stored-files gauges, so a scrape never counts a million rows.
CREATE TABLE IF NOT EXISTS file_totals (one INTEGER PRIMARY KEY CHECK (one = 1), files INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO file_totals (one, files, bytes) SELECT 1, count(*), coalesce(sum(bytes), 0) FROM files;
CREATE TRIGGER IF NOT EXISTS files_totals_insert AFTER INSERT ON files BEGIN
  UPDATE file_totals SET files = files + 1, bytes = bytes + NEW.bytes;
END;
CREATE TRIGGER IF NOT EXISTS files_totals_update AFTER UPDATE OF bytes ON files BEGIN
  UPDATE file_totals SET bytes = bytes - OLD.bytes + NEW.bytes;
END;
CREATE TRIGGER IF NOT EXISTS files_totals_delete AFTER DELETE ON files BEGIN
  UPDATE file_totals SET files = files - 1, bytes = bytes - OLD.bytes;
END;
`;

/**
 * The embedded default catalog. better-sqlite3 is synchronous, but every statement here is an
 * indexed point or range query on a prepared statement, which takes microseconds: cheaper than a
 * thread hop. WAL lets a reindex or backup read while the gateway writes.
 */
export class SqliteCatalog implements Catalog {
  readonly kind = 'sqlite';
  readonly location: string;
  private db!: Database.Database;
  private statements!: ReturnType<SqliteCatalog['prepare']>;

  constructor(file: string) {
    this.location = file === ':memory:' ? file : path.resolve(file);
  }

  async init(): Promise<void> {
    if (this.location !== ':memory:') fs.mkdirSync(path.dirname(this.location), { recursive: true });
    this.db = new Database(this.location);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.statements = this.prepare();
  }

  private prepare() {
    const db = this.db;
    const cols = 'id, filename, purpose, bytes, created_at, expires_at';
    const live = '(expires_at IS NULL OR expires_at > @now)';
    // Keyset pagination on (created_at, id): row-value comparison uses the (created_at, id) indexes.
    const page = (order: 'asc' | 'desc', purpose: boolean, after: boolean) => {
      const cmp = order === 'asc' ? '>' : '<';
      const where = [live];
      if (purpose) where.push('purpose = @purpose');
      if (after) where.push(`(created_at, id) ${cmp} (@afterCreatedAt, @afterId)`);
      return db.prepare<Record<string, unknown>, Row>(
        `SELECT ${cols} FROM files WHERE ${where.join(' AND ')} ORDER BY created_at ${order}, id ${order} LIMIT @limit`,
      );
    };
    const pages = new Map<string, Database.Statement<Record<string, unknown>, Row>>();
    for (const order of ['asc', 'desc'] as const)
      for (const purpose of [false, true]) for (const after of [false, true]) pages.set(`${order}:${purpose}:${after}`, page(order, purpose, after));
    return {
      upsert: db.prepare<Row>(
        `INSERT INTO files (${cols}) VALUES (@id, @filename, @purpose, @bytes, @created_at, @expires_at)
         ON CONFLICT (id) DO UPDATE SET filename = excluded.filename, purpose = excluded.purpose,
           bytes = excluded.bytes, created_at = excluded.created_at, expires_at = excluded.expires_at`,
      ),
      get: db.prepare<[string], Row>(`SELECT ${cols} FROM files WHERE id = ?`),
      delete: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
      expired: db.prepare<[number, number], Row>(
        `SELECT ${cols} FROM files WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      pages,
      stats: db.prepare<[], { files: number; bytes: number }>('SELECT files, bytes FROM file_totals'),
      ping: db.prepare('SELECT 1'),
    };
  }

  async upsert(f: FileRecord): Promise<void> {
    this.statements.upsert.run({
      id: f.id,
      filename: f.filename,
      purpose: f.purpose,
      bytes: f.bytes,
      created_at: f.createdAt,
      expires_at: f.expiresAt,
    });
  }

  async get(id: string): Promise<FileRecord | undefined> {
    const row = this.statements.get.get(id);
    return row && toRecord(row);
  }

  async list(q: ListQuery): Promise<FileRecord[]> {
    const stmt = this.statements.pages.get(`${q.order}:${q.purpose !== undefined}:${q.after !== undefined}`)!;
    return stmt
      .all({
        now: q.now,
        limit: q.limit,
        purpose: q.purpose,
        afterCreatedAt: q.after?.createdAt,
        afterId: q.after?.id,
      })
      .map(toRecord);
  }

  async delete(id: string): Promise<boolean> {
    return this.statements.delete.run(id).changes > 0;
  }

  async expired(now: number, limit: number): Promise<FileRecord[]> {
    return this.statements.expired.all(now, limit).map(toRecord);
  }

  async stats(): Promise<{ files: number; bytes: number }> {
    return this.statements.stats.get()!;
  }

  async ping(): Promise<void> {
    this.statements.ping.get();
  }

  async close(): Promise<void> {
    if (this.db?.open) this.db.close();
  }
}
