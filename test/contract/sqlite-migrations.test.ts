import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION } from '../../src/catalog/sqlite-migrations.js';
import { expectPreviousReleaseRows, previousReleaseDdl, previousReleaseInserts } from './previous-release.js';

let dir: string;
let file: string;
const opened: { close(): unknown }[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'files-gateway-sqlite-migrations-'));
  file = path.join(dir, 'catalog.sqlite');
});
afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
  await rm(dir, { recursive: true, force: true });
});

/** A connection of the test's own, as another process would have. */
function connect(): Database.Database {
  const db = new Database(file);
  opened.push(db);
  return db;
}

function catalog(): SqliteCatalog {
  const c = new SqliteCatalog(file);
  opened.push(c);
  return c;
}

/** Every table, index and trigger with the SQL that made it. */
const schemaOf = (db: Database.Database) =>
  db
    .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
    .all();
const userVersion = (db: Database.Database) => db.pragma('user_version', { simple: true });

/** A database as release 0.1.0 left it: its DDL, then rows written through it. */
function previousReleaseDatabase(): Database.Database {
  const db = connect();
  db.pragma('journal_mode = WAL');
  db.exec(previousReleaseDdl('sqlite'));
  for (const { sql, values } of previousReleaseInserts(() => '?')) {
    db.prepare(sql).run(...values.map((v) => (typeof v === 'boolean' ? Number(v) : v)));
  }
  return db;
}

describe('SQLite catalog migrations', () => {
  it('are numbered 1, 2, 3... and the last is the schema version', () => {
    expect(SQLITE_MIGRATIONS.map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((_, i) => i + 1));
    expect(SQLITE_SCHEMA_VERSION).toBe(SQLITE_MIGRATIONS.length);
  });

  it('make with migration 1 exactly the schema release 0.1.0 made', () => {
    const previous = new Database(':memory:');
    previous.exec(previousReleaseDdl('sqlite'));
    const first = new Database(':memory:');
    first.exec(SQLITE_MIGRATIONS[0]!.sql);
    expect(schemaOf(first)).toEqual(schemaOf(previous));
    expect(first.prepare('SELECT * FROM file_totals').all()).toEqual(
      previous.prepare('SELECT * FROM file_totals').all(),
    );
    previous.close();
    first.close();
  });

  it('bring a new database to the latest version', async () => {
    await catalog().init();
    const db = connect();
    expect(userVersion(db)).toBe(SQLITE_SCHEMA_VERSION);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('upgrade a database of release 0.1.0 (user_version 0, tables in place), keeping every file and upload', async () => {
    const db = previousReleaseDatabase();
    expect(userVersion(db)).toBe(0);

    const upgraded = catalog();
    await upgraded.init();

    expect(userVersion(db)).toBe(SQLITE_SCHEMA_VERSION);
    await expectPreviousReleaseRows(upgraded);
    // The same schema as a new database's.
    const fresh = new SqliteCatalog(path.join(dir, 'fresh.sqlite'));
    opened.push(fresh);
    await fresh.init();
    const freshDb = new Database(path.join(dir, 'fresh.sqlite'));
    opened.push(freshDb);
    expect(schemaOf(db)).toEqual(schemaOf(freshDb));
  });

  it('open an up-to-date database without writing to it', async () => {
    previousReleaseDatabase();
    const first = catalog();
    await first.init();
    await first.close();
    const other = connect();
    const schema = schemaOf(other);
    const dataVersion = other.pragma('data_version', { simple: true });

    const second = catalog();
    await second.init();
    await second.init();

    // data_version changes when another connection commits anything.
    expect(other.pragma('data_version', { simple: true })).toBe(dataVersion);
    expect(schemaOf(other)).toEqual(schema);
    expect(userVersion(other)).toBe(SQLITE_SCHEMA_VERSION);
    await expectPreviousReleaseRows(second);
  });

  it('refuse a database of a newer schema version, naming both versions, and leave it as it was', async () => {
    const db = connect();
    db.exec('CREATE TABLE files (id TEXT PRIMARY KEY, something_new TEXT)');
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    const schema = schemaOf(db);
    const journalMode = db.pragma('journal_mode', { simple: true });

    const newer = catalog();
    await expect(newer.init()).rejects.toThrow(
      `SQLite catalog at ${file} has schema version ${SQLITE_SCHEMA_VERSION + 1}, newer than ${SQLITE_SCHEMA_VERSION}, the latest this files-gateway knows`,
    );

    expect(userVersion(db)).toBe(SQLITE_SCHEMA_VERSION + 1);
    expect(schemaOf(db)).toEqual(schema);
    expect(db.pragma('journal_mode', { simple: true })).toBe(journalMode);
    // Its connection is closed already, and close() still answers.
    expect((newer as unknown as { db: Database.Database }).db.open).toBe(false);
    await newer.close();
  });

  it('refuse a files table made before release 0.1.0, naming the column it lacks, and leave it as it was', async () => {
    const db = connect();
    db.exec(
      'CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER)',
    );
    db.exec("INSERT INTO files VALUES ('file-1', 'a.txt', 'batch', 1, 1, NULL)");
    const schema = schemaOf(db);

    await expect(catalog().init()).rejects.toThrow(
      /older than release 0\.1\.0 \(its files table has no tenant column\)/,
    );

    expect(userVersion(db)).toBe(0);
    expect(schemaOf(db)).toEqual(schema);
    expect(db.prepare('SELECT count(*) FROM files').pluck().get()).toBe(1);
  });

  it('roll back a migration that fails, naming it, and apply it on the next start once it can run', async () => {
    const db = connect();
    // A table by the name of one of migration 1's indexes: CREATE INDEX fails half-way through it.
    db.exec('CREATE TABLE files_by_expiry (x)');

    await expect(catalog().init()).rejects.toThrow(/migration 1 \(.*\) failed: .*files_by_expiry/);
    expect(userVersion(db)).toBe(0);
    expect(schemaOf(db).map((o) => (o as { name: string }).name)).toEqual(['files_by_expiry']);

    db.exec('DROP TABLE files_by_expiry');
    const retried = catalog();
    await retried.init();
    expect(userVersion(db)).toBe(SQLITE_SCHEMA_VERSION);
    expect(await retried.stats()).toEqual({ files: 0, bytes: 0 });
  });
});
