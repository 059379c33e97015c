import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  type AddPartOutcome,
  type Catalog,
  type FileRecord,
  type ListQuery,
  type RecordShape,
  type UploadPartRecord,
  type UploadRecord,
  REMOVAL_CLAIMED,
} from './catalog.js';

import { unavailable } from '../errors.js';
import { migrateSqlite } from './sqlite-migrations.js';
import {
  FILE_COLS,
  FILE_COLUMNS,
  type PartRow,
  pageKey,
  type Row,
  statementKey,
  type UploadRow,
  shapeTemplate,
  toPart,
  toRecord,
  toRow,
  toUpload,
} from './rows.js';

const sqlText = (s: string) => `'${s.replaceAll("'", "''")}'`;
/**
 * The SQL expression writing a row as the JSON text of `shape`: the template's texts in SQL string
 * literals, and each field through json_quote, whose writer escapes exactly as JSON.stringify does
 * (the catalog contract checks every ASCII character) and writes an integer as an integer and NULL
 * as null. Cheaper than json_object, and the text is JSON.stringify's by construction wherever
 * SQLite does not write it (docs/decisions/0014-sqlite-renders-list-pages.md).
 */
function renderSql(shape: RecordShape): string {
  const { texts, fields } = shapeTemplate(shape);
  return (
    fields.map((field, i) => `${sqlText(texts[i]!)} || json_quote(${FILE_COLUMNS[field]}) || `).join('') +
    sqlText(texts.at(-1)!)
  );
}

type PageStatements = Map<string, Database.Statement<Record<string, unknown>, string>>;

/** Locked or busy past busy_timeout, I/O errors, a full or read-only disk, a file that cannot be opened. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CANTOPEN)/;

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
  /** List statements by the shape they render. */
  private renderedPages!: WeakMap<RecordShape, PageStatements>;

  constructor(file: string) {
    this.location = file === ':memory:' ? file : path.resolve(file);
  }

  async init(): Promise<void> {
    if (this.location !== ':memory:') fs.mkdirSync(path.dirname(this.location), { recursive: true });
    this.db = new Database(this.location);
    try {
      this.db.pragma('busy_timeout = 5000');
      // First, so that a database of a newer release is refused before anything is written to it.
      migrateSqlite(this.db, this.location);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.statements = this.prepare();
    this.renderedPages = new WeakMap();
  }

  private prepare() {
    const db = this.db;
    return {
      upsert: db.prepare<Row>(
        `INSERT INTO files (${FILE_COLS}) VALUES (@id, @tenant, @filename, @purpose, @bytes, @created_at, @expires_at)
         ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, filename = excluded.filename, purpose = excluded.purpose,
           bytes = excluded.bytes, created_at = excluded.created_at, expires_at = excluded.expires_at`,
      ),
      get: db.prepare<[string], Row>(`SELECT ${FILE_COLS} FROM files WHERE id = ?`),
      // Unclaimed: no expiry, or any but the claim's own. Rows are written one statement at a time,
      // so the one claim that changes the row is the one that wins.
      claimRemoval: db.prepare<[string]>(
        `UPDATE files SET expires_at = ${REMOVAL_CLAIMED} WHERE id = ? AND (expires_at IS NULL OR expires_at <> ${REMOVAL_CLAIMED})`,
      ),
      delete: db.prepare<[string]>('DELETE FROM files WHERE id = ?'),
      expired: db.prepare<[number, number], Row>(
        `SELECT ${FILE_COLS} FROM files WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      ),
      stats: db.prepare<[], { files: number; bytes: number }>('SELECT files, bytes FROM file_totals'),
      ping: db.prepare('SELECT 1'),
      begin: db.prepare('BEGIN'),
      commit: db.prepare('COMMIT'),
      ...this.prepareUploads(),
    };
  }

  /** The eight list statements (both orders, with and without purpose and cursor), each row as `select`. */
  private pageStatements(select: string): PageStatements {
    const db = this.db;
    // A page statement must not be re-prepared when it is bound, and SQLite re-prepares one whose
    // plan used a bound value: a bare LIMIT parameter always and, once ANALYZE has written
    // sqlite_stat4, any bare parameter compared with an indexed column (tenant, purpose, id, and
    // expires_at of the expiry index), at a cost felt on every page and more on an analysed catalog
    // (docs/decisions/0013-sqlite-list-statements-never-re-prepared.md). So the limit is an
    // expression and every other value a scalar subquery, `(SELECT @x)`, whose value is not known
    // when planning. The plan never depends on them: a range scan of an index in its order.
    const v = (name: string) => `(SELECT @${name})`;
    const live = `tenant = ${v('tenant')} AND (expires_at IS NULL OR expires_at > ${v('now')})`;
    const cursorAt = `coalesce((SELECT created_at FROM files WHERE id = ${v('afterId')} AND tenant = ${v('tenant')}), ${v('afterCreatedAt')})`;
    // Keyset pagination on (created_at, id): row-value comparison uses the (created_at, id) indexes.
    const page = (order: 'asc' | 'desc', purpose: boolean, after: boolean) => {
      const cmp = order === 'asc' ? '>' : '<';
      const where = [live];
      if (purpose) where.push(`purpose = ${v('purpose')}`);
      if (after) where.push(`(created_at, id) ${cmp} (${cursorAt}, ${v('afterId')})`);
      return db
        .prepare<Record<string, unknown>, string>(
          `SELECT ${select} FROM files WHERE ${where.join(' AND ')} ORDER BY created_at ${order}, id ${order} LIMIT CAST(@limit AS INTEGER)`,
        )
        .pluck();
    };
    const pages: PageStatements = new Map();
    for (const order of ['asc', 'desc'] as const)
      for (const purpose of [false, true])
        for (const after of [false, true]) pages.set(statementKey(order, purpose, after), page(order, purpose, after));
    return pages;
  }

  async upsert(f: FileRecord): Promise<void> {
    return this.write(() => {
      this.statements.upsert.run(toRow(f));
    });
  }

  async get(id: string): Promise<FileRecord | undefined> {
    return this.read(() => {
      const row = this.statements.get.get(id);
      return row && toRecord(row);
    });
  }

  /**
   * Each row comes back as one JSON text built by SQLite: one native value per row instead of
   * seven (better-sqlite3's cost is per value), and nothing for V8 to build or serialise
   * (docs/decisions/0014-sqlite-renders-list-pages.md).
   * Statements are prepared on a shape's first page; a shape is meant to be a constant.
   */
  async list(q: ListQuery, shape: RecordShape): Promise<string[]> {
    return this.read(() => {
      let pages = this.renderedPages.get(shape);
      if (!pages) {
        pages = this.pageStatements(renderSql(shape));
        this.renderedPages.set(shape, pages);
      }
      return pages.get(pageKey(q))!.all({
        tenant: q.tenant,
        now: q.now,
        limit: q.limit,
        purpose: q.purpose,
        afterCreatedAt: q.after?.createdAt,
        afterId: q.after?.id,
      });
    });
  }

  async claimRemoval(id: string): Promise<boolean> {
    return this.write(() => {
      return this.statements.claimRemoval.run(id).changes > 0;
    });
  }

  async delete(id: string): Promise<boolean> {
    return this.write(() => {
      return this.statements.delete.run(id).changes > 0;
    });
  }

  async expired(now: number, limit: number): Promise<FileRecord[]> {
    return this.read(() => {
      return this.statements.expired.all(now, limit).map(toRecord);
    });
  }

  async stats(): Promise<{ files: number; bytes: number }> {
    return this.read(() => {
      return this.statements.stats.get()!;
    });
  }

  async ping(): Promise<void> {
    return this.read(() => {
      this.statements.ping.get();
    });
  }

  /** One process owns a SQLite file (it is not shared between replicas): nothing to coordinate. */
  async runExclusive<T>(_name: string, fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  /**
   * Reads share one read transaction per event-loop turn, ended by setImmediate. Outside a
   * transaction SQLite takes and drops its shared lock on the database file around every statement
   * (two fcntl calls and an fstat), and system calls are slow where this runs; under load one turn
   * answers about one request per open connection, so the lock is taken once for all of them
   * (docs/decisions/0012-sqlite-one-snapshot-per-event-loop-turn.md). Reads in a turn see the
   * database as of the first of them plus this process's own writes (a write ends the snapshot
   * first); another process's writes (`reindex`, `check`) show from the next turn on.
   */
  private read<T>(call: () => T): T {
    return this.guard(() => {
      if (!this.snapshotOpen) {
        this.statements.begin.run();
        this.snapshotOpen = true;
        setImmediate(this.endSnapshot);
      }
      return call();
    });
  }

  /** A write never runs inside a read snapshot: upgrading one that another process overtook fails. */
  private write<T>(call: () => T): T {
    return this.guard(() => {
      this.endSnapshot();
      return call();
    });
  }

  private snapshotOpen = false;
  private readonly endSnapshot = (): void => {
    if (!this.snapshotOpen) return;
    this.snapshotOpen = false;
    // A read transaction's COMMIT only drops its lock. An error inside it may have rolled it back
    // already, and close() ends it (inTransaction is false on a closed database).
    if (this.db.inTransaction) this.statements.commit.run();
  };

  /** SQLite failures that are the database's state, not the request's, become 503 at this edge. */
  private guard<T>(call: () => T): T {
    try {
      return call();
    } catch (err) {
      throw UNAVAILABLE.test((err as { code?: string }).code ?? '') ? unavailable('catalog', err) : err;
    }
  }

  async close(): Promise<void> {
    if (this.db?.open) this.db.close();
  }

  private prepareUploads() {
    const db = this.db;
    const cols =
      'id, tenant, filename, purpose, bytes, mime_type, created_at, expires_at, file_ttl_seconds, status, file_id, assembly';
    const insertFile = db.prepare<Row>(
      'INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, expires_at) VALUES (@id, @tenant, @filename, @purpose, @bytes, @created_at, @expires_at)',
    );
    const getUpload = db.prepare<[string], UploadRow>(`SELECT ${cols} FROM uploads WHERE id = ?`);
    const partTotals = db.prepare<[string], { count: number; bytes: number }>(
      'SELECT count(*) AS count, coalesce(sum(bytes), 0) AS bytes FROM upload_parts WHERE upload_id = ?',
    );
    const insertPart = db.prepare<PartRow>(
      'INSERT INTO upload_parts (id, upload_id, bytes, created_at, slot) VALUES (@id, @upload_id, @bytes, @created_at, @slot)',
    );
    const complete = db.prepare<[string, string]>(
      "UPDATE uploads SET status = 'completed', file_id = ? WHERE id = ? AND status = 'pending'",
    );
    const deleteParts = db.prepare<[string]>('DELETE FROM upload_parts WHERE upload_id = ?');
    const release = db.prepare<[string]>(
      "UPDATE uploads SET released = 1, status = CASE WHEN status = 'pending' THEN 'expired' ELSE status END WHERE id = ?",
    );
    return {
      insertUpload: db.prepare<UploadRow>(
        `INSERT INTO uploads (${cols}) VALUES (@id, @tenant, @filename, @purpose, @bytes, @mime_type, @created_at, @expires_at, @file_ttl_seconds, @status, @file_id, @assembly)`,
      ),
      getUpload,
      // better-sqlite3 transactions are synchronous: nothing else runs between the checks and the insert
      addPart: db.transaction((part: UploadPartRecord, now: number, maxParts: number): AddPartOutcome => {
        const upload = getUpload.get(part.uploadId);
        if (upload?.status !== 'pending' || upload.expires_at <= now) return 'not_pending';
        const totals = partTotals.get(part.uploadId)!;
        if (totals.bytes + part.bytes > upload.bytes) return 'over_bytes';
        if (totals.count >= maxParts) return 'too_many_parts';
        insertPart.run({
          id: part.id,
          upload_id: part.uploadId,
          bytes: part.bytes,
          created_at: part.createdAt,
          slot: part.slot ?? null,
        });
        return 'added';
      }),
      uploadParts: db.prepare<[string], PartRow>(
        'SELECT id, upload_id, bytes, created_at, slot FROM upload_parts WHERE upload_id = ? ORDER BY created_at, id',
      ),
      reserveSlot: db.prepare<[string], { slot: number }>(
        'UPDATE uploads SET part_slots = part_slots + 1 WHERE id = ? RETURNING part_slots - 1 AS slot',
      ),
      cancel: db.prepare<[string]>("UPDATE uploads SET status = 'cancelled' WHERE id = ? AND status = 'pending'"),
      complete: db.transaction((id: string, f: FileRecord): boolean => {
        if (complete.run(f.id, id).changes === 0) return false;
        insertFile.run(toRow(f));
        return true;
      }),
      toRelease: db.prepare<[number, number], UploadRow>(
        `SELECT ${cols} FROM uploads WHERE released = 0 AND (status <> 'pending' OR expires_at <= ?) ORDER BY expires_at LIMIT ?`,
      ),
      release: db.transaction((id: string) => {
        deleteParts.run(id);
        release.run(id);
      }),
      forget: db.prepare<[number]>('DELETE FROM uploads WHERE released = 1 AND expires_at <= ?'),
    };
  }

  async insertUpload(u: UploadRecord): Promise<void> {
    return this.write(() => {
      this.statements.insertUpload.run({
        id: u.id,
        tenant: u.tenant,
        filename: u.filename,
        purpose: u.purpose,
        bytes: u.bytes,
        mime_type: u.mimeType,
        created_at: u.createdAt,
        expires_at: u.expiresAt,
        file_ttl_seconds: u.fileTtlSeconds,
        status: u.status,
        file_id: u.fileId,
        assembly: u.assembly ?? null,
      });
    });
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    return this.read(() => {
      const row = this.statements.getUpload.get(id);
      return row && toUpload(row);
    });
  }

  async addUploadPart(part: UploadPartRecord, now: number, maxParts: number): Promise<AddPartOutcome> {
    return this.write(() => {
      return this.statements.addPart(part, now, maxParts);
    });
  }

  async uploadParts(uploadId: string): Promise<UploadPartRecord[]> {
    return this.read(() => {
      return this.statements.uploadParts.all(uploadId).map(toPart);
    });
  }

  async reservePartSlot(uploadId: string): Promise<number> {
    return this.write(() => {
      const row = this.statements.reserveSlot.get(uploadId);
      if (!row) throw new Error(`no upload ${uploadId} to reserve a part slot in`);
      return row.slot;
    });
  }

  async cancelUpload(id: string): Promise<boolean> {
    return this.write(() => {
      return this.statements.cancel.run(id).changes > 0;
    });
  }

  async completeUpload(id: string, file: FileRecord): Promise<boolean> {
    return this.write(() => {
      return this.statements.complete(id, file);
    });
  }

  async uploadsToRelease(now: number, limit: number): Promise<UploadRecord[]> {
    return this.read(() => {
      return this.statements.toRelease.all(now, limit).map(toUpload);
    });
  }

  async markUploadReleased(id: string): Promise<void> {
    return this.write(() => {
      this.statements.release(id);
    });
  }

  async forgetUploads(before: number): Promise<number> {
    return this.write(() => {
      return this.statements.forget.run(before).changes;
    });
  }
}
