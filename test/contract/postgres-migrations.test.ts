import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION } from '../../src/catalog/postgres-migrations.js';
import { postgresForFile } from '../helpers/catalog.js';
import { expectPreviousReleaseRows, previousReleaseDdl, previousReleaseInserts } from './previous-release.js';

const postgres = postgresForFile();
/** Release 0.1.0's databases have had migrations 1 and 2. */
const PREVIOUS_RELEASE_VERSION = 2;

const opened: { end?(): Promise<void>; close?(): Promise<void> }[] = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await (o.close ?? o.end)!.call(o);
});

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  opened.push(client);
  return client;
}

function catalog(url: string): PostgresCatalog {
  const c = new PostgresCatalog({ url, poolSize: 2 });
  opened.push(c);
  return c;
}

/** Everything the migrations make, as PostgreSQL describes it: columns, constraints, indexes, functions, triggers. */
async function schemaOf(db: pg.Client) {
  const rows = async (sql: string) => (await db.query(sql)).rows;
  return {
    columns:
      await rows(`SELECT table_name, ordinal_position, column_name, data_type, collation_name, column_default, is_nullable
      FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`),
    constraints: await rows(`SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
      FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`),
    indexes: await rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"),
    functions: await rows(
      "SELECT proname, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname",
    ),
    triggers: await rows(
      'SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname',
    ),
  };
}

const versionsOf = async (db: pg.Client) =>
  (await db.query<{ version: number }>('SELECT version FROM schema_version ORDER BY version')).rows.map(
    (r) => r.version,
  );

/** A database as release 0.1.0 left it: its DDL, then rows written through it. */
async function previousReleaseDatabase(): Promise<{ url: string; db: pg.Client }> {
  const url = await postgres.freshDatabase();
  const db = await connect(url);
  await db.query(previousReleaseDdl('postgres'));
  for (const { sql, values } of previousReleaseInserts((n) => `$${n}`)) await db.query(sql, values);
  return { url, db };
}

describe('PostgreSQL catalog migrations', () => {
  it('are numbered 1, 2, 3... and the last is the schema version', () => {
    expect(POSTGRES_MIGRATIONS.map((m) => m.version)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
    expect(POSTGRES_SCHEMA_VERSION).toBe(POSTGRES_MIGRATIONS.length);
  });

  it('make of a new database exactly the schema release 0.1.0 made, with the later migrations on top', async () => {
    const previous = await connect(await postgres.freshDatabase());
    await previous.query(previousReleaseDdl('postgres'));
    for (const m of POSTGRES_MIGRATIONS.filter((m) => m.version > PREVIOUS_RELEASE_VERSION)) {
      await previous.query(m.sql);
      await previous.query('INSERT INTO schema_version (version) VALUES ($1)', [m.version]);
    }
    const url = await postgres.freshDatabase();
    await catalog(url).init();
    const db = await connect(url);

    expect(await schemaOf(db)).toEqual(await schemaOf(previous));
    expect(await versionsOf(db)).toEqual(await versionsOf(previous));
    expect((await db.query('SELECT * FROM file_totals')).rows).toEqual(
      (await previous.query('SELECT * FROM file_totals')).rows,
    );
  });

  it('upgrade a database of release 0.1.0, keeping every file and upload', async () => {
    const { url, db } = await previousReleaseDatabase();
    const fresh = await postgres.freshDatabase();
    await catalog(fresh).init();

    const upgraded = catalog(url);
    await upgraded.init();

    expect(await versionsOf(db)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(await schemaOf(db)).toEqual(await schemaOf(await connect(fresh)));
    await expectPreviousReleaseRows(upgraded);
  });

  it('bring a database that has had only some migrations to the latest, keeping its rows', async () => {
    const url = await postgres.freshDatabase();
    const db = await connect(url);
    await db.query(
      'CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    await db.query(POSTGRES_MIGRATIONS[0]!.sql);
    await db.query('INSERT INTO schema_version (version) VALUES (1)');
    await db.query(
      "INSERT INTO files (id, filename, purpose, bytes, created_at) VALUES ('file-1', 'a.txt', 'batch', 3, 100)",
    );

    const c = catalog(url);
    await c.init();

    expect(await versionsOf(db)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(await c.get('file-1')).toMatchObject({ filename: 'a.txt', bytes: 3 });
    expect(await c.stats()).toEqual({ files: 1, bytes: 3 });
    expect(await c.uploadParts('upload-none')).toEqual([]);
  });

  it('open an up-to-date database without changing it', async () => {
    const { url, db } = await previousReleaseDatabase();
    await catalog(url).init();
    const applied = (await db.query('SELECT version, applied_at FROM schema_version ORDER BY version')).rows;
    const schema = await schemaOf(db);

    const again = catalog(url);
    await again.init();
    await again.init();

    expect((await db.query('SELECT version, applied_at FROM schema_version ORDER BY version')).rows).toEqual(applied);
    expect(await schemaOf(db)).toEqual(schema);
    await expectPreviousReleaseRows(again);
  });

  it('migrate a new database once when replicas start at the same moment, one migration per transaction', async () => {
    const url = await postgres.freshDatabase();
    const replicas = Array.from({ length: 6 }, () => catalog(url));
    await Promise.all(replicas.map((c) => c.init()));
    const db = await connect(url);
    // Each migration committed on its own: the versions were recorded by different transactions.
    const { rows } = await db.query<{ version: number; xmin: string }>(
      'SELECT version, xmin::text FROM schema_version ORDER BY version',
    );
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    expect(new Set(rows.map((r) => r.xmin)).size).toBe(rows.length);
    await replicas[3]!.upsert({
      id: 'file-1',
      tenant: '',
      filename: 'a',
      purpose: 'batch',
      bytes: 1,
      createdAt: 1,
      expiresAt: null,
    });
    expect(await replicas[4]!.stats()).toEqual({ files: 1, bytes: 1 });
  });

  it('use a database that a later release migrated further as it is, for a rolling upgrade or a rollback', async () => {
    const { url, db } = await previousReleaseDatabase();
    await catalog(url).init();
    await db.query('INSERT INTO schema_version (version) VALUES ($1)', [POSTGRES_SCHEMA_VERSION + 1]);
    const schema = await schemaOf(db);

    const c = catalog(url);
    await c.init();

    expect(await versionsOf(db)).toEqual([...POSTGRES_MIGRATIONS.map((m) => m.version), POSTGRES_SCHEMA_VERSION + 1]);
    expect(await schemaOf(db)).toEqual(schema);
    await expectPreviousReleaseRows(c);
  });

  it('roll back a migration that fails, naming it, and keep the ones before it', async () => {
    const url = await postgres.freshDatabase();
    const db = await connect(url);
    // A table by the name of one migration 2 makes, there before it: migration 1 runs, 2 fails.
    await db.query('CREATE TABLE upload_parts (x integer)');

    const c = catalog(url);
    await expect(c.init()).rejects.toThrow(
      /^PostgreSQL catalog at .*: migration 2 \(uploads and upload parts\) failed: relation "upload_parts" already exists$/,
    );

    expect(await versionsOf(db)).toEqual([1]);
    expect((await db.query("SELECT to_regclass('uploads') AS t")).rows[0].t).toBeNull();
    await db.query('DROP TABLE upload_parts');
    await c.init();
    expect(await versionsOf(db)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
  });
});
