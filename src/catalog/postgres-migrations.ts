/**
 * The PostgreSQL catalog's schema, as numbered migrations, and the runner that applies them. The
 * versions a database has had are the rows of its schema_version table (release 0.1.0 kept it the
 * same way, so its databases are at version 2 and need nothing more).
 */
import type pg from 'pg';
import { latestVersion, type Migration } from './migration.js';

/** Ids sort bytewise (COLLATE "C"), as they do on SQLite. */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'files and their running totals',
    sql: `
CREATE TABLE files (
  id         text COLLATE "C" PRIMARY KEY,
  tenant     text NOT NULL DEFAULT '',
  filename   text NOT NULL,
  purpose    text NOT NULL,
  bytes      bigint NOT NULL,
  created_at bigint NOT NULL,
  expires_at bigint
);
-- Lists are per tenant: every keyset index leads with it.
CREATE INDEX files_by_time ON files (tenant, created_at, id);
CREATE INDEX files_by_purpose_time ON files (tenant, purpose, created_at, id);
CREATE INDEX files_by_expiry ON files (expires_at) WHERE expires_at IS NOT NULL;

-- Running totals for the stored-files gauges, so a scrape never counts a million rows. Statement
-- triggers with transition tables: a bulk insert updates the one totals row once, not per row, and a
-- statement that changed nothing does not lock it.
CREATE TABLE file_totals (one boolean PRIMARY KEY DEFAULT true CHECK (one), files bigint NOT NULL, bytes bigint NOT NULL);
INSERT INTO file_totals (files, bytes) VALUES (0, 0);
CREATE FUNCTION file_totals_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE file_totals SET files = files + d.n, bytes = bytes + d.b
    FROM (SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM new_rows) d WHERE d.n > 0;
  RETURN NULL;
END $$;
CREATE FUNCTION file_totals_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE file_totals SET bytes = bytes + d.b
    FROM (SELECT (SELECT coalesce(sum(bytes), 0) FROM new_rows) - (SELECT coalesce(sum(bytes), 0) FROM old_rows) AS b) d WHERE d.b <> 0;
  RETURN NULL;
END $$;
CREATE FUNCTION file_totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  UPDATE file_totals SET files = files - d.n, bytes = bytes - d.b
    FROM (SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM old_rows) d WHERE d.n > 0;
  RETURN NULL;
END $$;
CREATE TRIGGER files_totals_insert AFTER INSERT ON files REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION file_totals_insert();
CREATE TRIGGER files_totals_update AFTER UPDATE ON files REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION file_totals_update();
CREATE TRIGGER files_totals_delete AFTER DELETE ON files REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION file_totals_delete();
`,
  },
  {
    version: 2,
    description: 'uploads and upload parts',
    // released: the store holds nothing more for the upload; the row stays a while so that a
    // retried complete or cancel still gets its answer.
    sql: `
CREATE TABLE uploads (
  id               text COLLATE "C" PRIMARY KEY,
  tenant           text NOT NULL DEFAULT '',
  filename         text NOT NULL,
  purpose          text NOT NULL,
  bytes            bigint NOT NULL,
  mime_type        text NOT NULL,
  created_at       bigint NOT NULL,
  expires_at       bigint NOT NULL,
  file_ttl_seconds bigint,
  status           text NOT NULL,
  file_id          text,
  released         boolean NOT NULL DEFAULT false
);
CREATE INDEX uploads_by_release ON uploads (released, expires_at);
CREATE TABLE upload_parts (
  id         text COLLATE "C" PRIMARY KEY,
  upload_id  text NOT NULL,
  bytes      bigint NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX upload_parts_by_upload ON upload_parts (upload_id);
`,
  },
  {
    version: 3,
    description: 'uploads whose parts go straight into the file: the store write they go to, and part slots',
    // Nullable or defaulted columns: replicas of the release before keep inserting uploads and parts.
    sql: `
ALTER TABLE uploads ADD COLUMN assembly text;
ALTER TABLE uploads ADD COLUMN part_slots integer NOT NULL DEFAULT 0;
ALTER TABLE upload_parts ADD COLUMN slot integer;
`,
  },
];

export const POSTGRES_SCHEMA_VERSION = latestVersion(POSTGRES_MIGRATIONS);

/**
 * Runs `migrate` in a transaction of its own, holding a lock that keeps every other replica's
 * migrations out until that transaction ends (the catalog's advisory lock), and returns its result.
 */
export type ExclusiveTransaction = <T>(migrate: (tx: pg.ClientBase) => Promise<T>) => Promise<T>;

/**
 * Brings the database to POSTGRES_SCHEMA_VERSION, one migration per exclusive transaction: each
 * reads the applied versions again under the lock, so replicas starting at once apply each
 * migration once, and a migration and its schema_version row commit together or not at all. A
 * database that is up to date costs one transaction.
 *
 * A database with versions beyond the ones known here is used as it is, not refused: during a
 * rolling upgrade (or a rollback) replicas of the earlier release keep running against the schema
 * the later one migrated, so migrations must leave it usable by the release before them.
 */
export async function migratePostgres(exclusive: ExclusiveTransaction): Promise<void> {
  for (;;) {
    const applied = await exclusive(async (tx) => {
      await tx.query(
        'CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
      );
      const { rows } = await tx.query<{ v: number }>('SELECT coalesce(max(version), 0) AS v FROM schema_version');
      const next = POSTGRES_MIGRATIONS.find((m) => m.version > rows[0]!.v);
      if (!next) return undefined;
      try {
        await tx.query(next.sql);
      } catch (err) {
        throw new Error(`migration ${next.version} (${next.description}) failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await tx.query('INSERT INTO schema_version (version) VALUES ($1)', [next.version]);
      return next.version;
    });
    if (applied === undefined) return;
  }
}
