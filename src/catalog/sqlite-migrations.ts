/**
 * The SQLite catalog's schema, as numbered migrations, and the runner that applies them. The version
 * a database is at is its PRAGMA user_version (0 in a new database).
 */
import type Database from 'better-sqlite3';
import { latestVersion, type Migration } from './migration.js';

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'files, their running totals, uploads and upload parts (the schema of release 0.1.0)',
    // Release 0.1.0 ran these at every start and never set user_version. Every statement here must
    // stay a no-op on a database that has what it makes, since such a database reaches this
    // migration at version 0 with its tables in place (see migrateSqlite). Later migrations run on
    // exactly the schema the ones before them made.
    sql: `
CREATE TABLE IF NOT EXISTS files (
  id         TEXT PRIMARY KEY,
  tenant     TEXT NOT NULL DEFAULT '',
  filename   TEXT NOT NULL,
  purpose    TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
-- Lists are per tenant: every keyset index leads with it. Each also carries every other column a
-- list shows, so a page is read from the index alone: a row lookup per file cost a page of 100 a
-- quarter of its time. They replace the narrower indexes of earlier builds (migration 2).
CREATE INDEX IF NOT EXISTS files_list_by_time ON files (tenant, created_at, id, filename, purpose, bytes, expires_at);
CREATE INDEX IF NOT EXISTS files_list_by_purpose_time ON files (tenant, purpose, created_at, id, filename, bytes, expires_at);
CREATE INDEX IF NOT EXISTS files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;
-- Running totals for the stored-files gauges, so a scrape never counts a million rows. Counted from
-- the files already there when the table is new.
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
-- Uploads API state, so an upload survives a restart. released = 1 once the store holds nothing
-- more for the upload; the row stays a while so that a retried complete or cancel still gets its
-- answer.
CREATE TABLE IF NOT EXISTS uploads (
  id               TEXT PRIMARY KEY,
  tenant           TEXT NOT NULL DEFAULT '',
  filename         TEXT NOT NULL,
  purpose          TEXT NOT NULL,
  bytes            INTEGER NOT NULL,
  mime_type        TEXT NOT NULL,
  created_at       INTEGER NOT NULL,
  expires_at       INTEGER NOT NULL,
  file_ttl_seconds INTEGER,
  status           TEXT NOT NULL,
  file_id          TEXT,
  released         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS uploads_by_release ON uploads (released, expires_at);
CREATE TABLE IF NOT EXISTS upload_parts (
  id         TEXT PRIMARY KEY,
  upload_id  TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS upload_parts_by_upload ON upload_parts (upload_id);
`,
  },
  {
    version: 2,
    description: 'drop the narrow list indexes of builds before 0.1.0',
    // Builds before 0.1.0 listed through (tenant, created_at, id) and (tenant, purpose, created_at,
    // id); the covering indexes of migration 1 replace them. Release 0.1.0 dropped them at every
    // start, so its databases no longer have them.
    sql: `
DROP INDEX IF EXISTS files_by_time;
DROP INDEX IF EXISTS files_by_purpose_time;
`,
  },
  {
    version: 3,
    description: 'uploads whose parts go straight into the file: the store write they go to, and part slots',
    sql: `
ALTER TABLE uploads ADD COLUMN assembly TEXT;
ALTER TABLE uploads ADD COLUMN part_slots INTEGER NOT NULL DEFAULT 0;
ALTER TABLE upload_parts ADD COLUMN slot INTEGER;
`,
  },
];

export const SQLITE_SCHEMA_VERSION = latestVersion(SQLITE_MIGRATIONS);

/** The columns of the files table that migration 1 counts on finding in a database made before user_version was set. */
const BASELINE_FILE_COLUMNS = ['id', 'tenant', 'filename', 'purpose', 'bytes', 'created_at', 'expires_at'];

const userVersion = (db: Database.Database): number => db.pragma('user_version', { simple: true }) as number;

const hasTable = (db: Database.Database, name: string): boolean =>
  db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;

/**
 * Brings the database to SQLITE_SCHEMA_VERSION, one migration per transaction, and refuses, before
 * writing anything, one that a newer release has taken further than this code knows.
 *
 * Version 0 is a new database or one release 0.1.0 made (it never set user_version): the files
 * table tells them apart. On either, migration 1 runs as it is: it creates what is missing and
 * leaves what is there, rows included. A files table without the columns migration 1 indexes was
 * made by a build before 0.1.0, which is refused with the column it lacks rather than half-migrated.
 *
 * Each migration runs in an immediate transaction that reads the version again first, so that two
 * processes opening one file at once (the gateway and `reindex`, say) apply each migration once.
 * A database that is up to date is only read.
 */
export function migrateSqlite(db: Database.Database, location: string): void {
  const refuseNewer = (version: number) => {
    if (version > SQLITE_SCHEMA_VERSION) {
      throw new Error(
        `SQLite catalog at ${location} has schema version ${version}, newer than ${SQLITE_SCHEMA_VERSION}, the latest this files-gateway knows: ` +
          'it was written by a later release. Run that release (or a later one), or restore a backup of the catalog made before it.',
      );
    }
  };
  const start = userVersion(db);
  refuseNewer(start);
  if (start === SQLITE_SCHEMA_VERSION) return;
  for (const migration of SQLITE_MIGRATIONS) {
    db.transaction(() => {
      const version = userVersion(db);
      refuseNewer(version);
      if (version >= migration.version) return;
      if (version === 0 && hasTable(db, 'files')) checkUnversioned(db, location);
      try {
        db.exec(migration.sql);
      } catch (err) {
        throw new Error(
          `SQLite catalog at ${location}: migration ${migration.version} (${migration.description}) failed: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
}

/** A database at version 0 with tables in it: release 0.1.0's, which migration 1 takes as it is, or older. */
function checkUnversioned(db: Database.Database, location: string): void {
  const columns = new Set(
    db
      .prepare<[string], { name: string }>('SELECT name FROM pragma_table_info(?)')
      .all('files')
      .map((c) => c.name),
  );
  const missing = BASELINE_FILE_COLUMNS.filter((c) => !columns.has(c));
  if (missing.length > 0) {
    throw new Error(
      `SQLite catalog at ${location} was made by a build older than release 0.1.0 (its files table has no ${missing.join(', ')} column) ` +
        'and cannot be upgraded: move it aside and rebuild the catalog from the store with `files-gateway reindex`.',
    );
  }
}
