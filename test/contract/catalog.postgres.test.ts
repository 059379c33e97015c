import { describe, expect, it } from 'vitest';
import pg from 'pg';
import Database from 'better-sqlite3';
import path from 'node:path';
import { PostgresCatalog, pageSql, renderPlan } from '../../src/catalog/postgres-catalog.js';
import { POSTGRES_MIGRATIONS } from '../../src/catalog/postgres-migrations.js';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import type { FileRecord, RecordShape } from '../../src/catalog/catalog.js';
import { FILE_OBJECT } from '../../src/api/wire.js';
import { GatewayError } from '../../src/errors.js';
import { tempDir } from '../helpers/gateway.js';
import { freePort } from '../helpers/rgw.js';
import { catalogContract } from './catalog.contract.js';
import { listRecords, postgresForFile } from '../helpers/catalog.js';

const postgres = postgresForFile();

/** A catalog on a database of its own. */
async function freshCatalog(poolSize = 4): Promise<{ catalog: PostgresCatalog; url: string }> {
  const url = await postgres.freshDatabase();
  return { catalog: new PostgresCatalog({ url, poolSize }), url };
}

catalogContract('postgres', async () => (await freshCatalog()).catalog);

const file = (n: number, extra: Partial<FileRecord> = {}): FileRecord => ({
  id: `file-${n.toString(16).padStart(32, '0')}`,
  tenant: '',
  filename: `${n}.txt`,
  purpose: n % 2 ? 'batch' : 'assistants',
  bytes: n,
  createdAt: 1_700_000_000 + Math.floor(n / 7),
  expiresAt: null,
  ...extra,
});

/** Every list query shape: with and without purpose and cursor, both orders. */
const SHAPES = (['asc', 'desc'] as const).flatMap((order) =>
  [false, true].flatMap((purpose) => [false, true].map((after) => ({ order, purpose, after }))),
);

describe('PostgreSQL catalog', () => {
  it('never shows the password in its location', async () => {
    const { catalog, url } = await freshCatalog();
    expect(url).toContain('not-a-secret-pw');
    expect(catalog.location).not.toContain('not-a-secret-pw');
    expect(catalog.location).toContain(`127.0.0.1:${postgres.cluster().port}`);
    await catalog.close();
  });

  it('migrates once when several replicas start at the same moment, and again finds nothing to do', async () => {
    const url = await postgres.cluster().createDatabase('racing_replicas');
    const replicas = Array.from({ length: 6 }, () => new PostgresCatalog({ url, poolSize: 2 }));
    await Promise.all(replicas.map((c) => c.init()));
    await replicas[0]!.init();
    await replicas[1]!.upsert(file(1));
    expect(await replicas[5]!.get(file(1).id)).toEqual(file(1));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const { rows } = await admin.query('SELECT version FROM schema_version ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    await admin.end();
    await Promise.all(replicas.map((c) => c.close()));
  });

  it('keeps stats() from running totals through bulk inserts, upserts, deletes and completed uploads', async () => {
    const { catalog, url } = await freshCatalog();
    await catalog.init();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(
      `INSERT INTO files (id, filename, purpose, bytes, created_at) SELECT 'file-bulk-' || i, 'f', 'batch', i, i FROM generate_series(1, 1000) i`,
    );
    await admin.end();
    expect(await catalog.stats()).toEqual({ files: 1000, bytes: 500_500 });
    await catalog.upsert(file(1, { id: 'file-bulk-1', bytes: 101 }));
    await catalog.upsert(file(2, { bytes: 5 }));
    expect(await catalog.delete('file-bulk-2')).toBe(true);
    expect(await catalog.delete('file-bulk-2')).toBe(false);
    expect(await catalog.stats()).toEqual({ files: 1000, bytes: 500_500 + 100 + 5 - 2 });
    await catalog.close();
  });

  it('answers every list shape with an index scan in a catalog of thousands, custom and generic plans alike', async () => {
    const { catalog, url } = await freshCatalog();
    await catalog.init();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(
      `INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, expires_at)
       SELECT 'file-' || lpad(to_hex(i), 32, '0'), CASE WHEN i % 10 = 0 THEN 'other' ELSE '' END, 'f.txt',
              (ARRAY['assistants', 'batch', 'vision', 'user_data'])[1 + i % 4], i, 1700000000 + i / 5, CASE WHEN i % 3 = 0 THEN 1800000000 END
       FROM generate_series(1, 5000) i`,
    );
    await admin.query('ANALYZE files');
    // The statements list pages of the API's file objects run.
    const select = renderPlan(FILE_OBJECT).joined;
    for (const mode of ['force_custom_plan', 'force_generic_plan']) {
      await admin.query(`SET plan_cache_mode = ${mode}`);
      for (const { order, purpose, after } of SHAPES) {
        const values: unknown[] = ['', 1_700_000_000, 101];
        if (purpose) values.push('batch');
        if (after) values.push(1_700_000_500, `file-${(2500).toString(16).padStart(32, '0')}`);
        await admin.query({
          name: `shape-${mode}-${order}-${purpose}-${after}`,
          text: pageSql(select, order, purpose, after),
          values,
        });
        // EXPLAIN EXECUTE of the same prepared statement shows the plan the catalog runs.
        await admin.query(`PREPARE p AS ${pageSql(select, order, purpose, after)}`);
        const literals = values.map((v) => (typeof v === 'string' ? `'${v}'` : String(v))).join(', ');
        const plan = (await admin.query(`EXPLAIN EXECUTE p(${literals})`)).rows.map((r) => r['QUERY PLAN']).join('\n');
        await admin.query('DEALLOCATE p');
        const shape = `${mode} ${order} purpose=${purpose} after=${after}`;
        expect(plan, shape).toMatch(
          new RegExp(`Index Scan.* using ${purpose ? 'files_by_purpose_time' : 'files_by_time'}`),
        );
        expect(plan, shape).not.toMatch(/Seq Scan|Sort|Bitmap/);
        // A cursor starts the range scan, the cursor row's position looked up once by primary key.
        if (after) expect(plan, shape).toMatch(/Index Cond: .*ROW\(created_at, id\) [<>] ROW\(/);
        if (after) expect(plan, shape).toMatch(/InitPlan[\s\S]*Index Scan using files_pkey/);
      }
    }
    await admin.end();
    await catalog.close();
  });

  it('runs every list statement on its generic plan, never planning a page afresh', async () => {
    // One connection, so that its prepared statements are the ones the catalog ran.
    const { catalog } = await freshCatalog(1);
    await catalog.init();
    for (let i = 0; i < 40; i++) await catalog.upsert(file(i, { purpose: i % 2 ? 'batch' : 'assistants' }));
    for (const { order, purpose, after } of SHAPES)
      for (let run = 0; run < 8; run++) {
        const page = await catalog.list(
          {
            tenant: '',
            order,
            limit: 5,
            now: 0,
            purpose: purpose ? 'batch' : undefined,
            after: after ? { createdAt: 0, id: file(20).id } : undefined,
          },
          FILE_OBJECT,
        );
        expect(page.length).toBeGreaterThan(0);
      }
    const pool = (catalog as unknown as { pool: pg.Pool }).pool;
    const { rows } = await pool.query<{ name: string; generic_plans: string; custom_plans: string }>(
      `SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'rendered%' ORDER BY name`,
    );
    expect(rows).toHaveLength(SHAPES.length);
    // By default the first five runs of a statement are planned afresh, and later ones may be.
    for (const r of rows) expect([r.name, Number(r.generic_plans), Number(r.custom_plans)]).toEqual([r.name, 8, 0]);
    await catalog.close();
  });

  it('turns an unreachable database into 503 and other errors into themselves', async () => {
    const down = new PostgresCatalog({ url: `postgres://postgres:pw@127.0.0.1:${await freePort()}/x`, poolSize: 1 });
    const err = await down.get('file-x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(503);
    await expect(down.init()).rejects.toThrow(
      /PostgreSQL catalog at postgres:\/\/postgres:\*\*\*\*@127\.0\.0\.1:\d+\/x: .*ECONNREFUSED/,
    );
    await down.close();

    const { catalog } = await freshCatalog();
    await catalog.init();
    await catalog.upsert(file(1));
    // A duplicate id on complete is a bug, not an outage.
    await catalog.insertUpload({
      id: 'upload-1',
      tenant: '',
      filename: 'u',
      purpose: 'batch',
      bytes: 1,
      mimeType: 'text/plain',
      createdAt: 1,
      expiresAt: 4_000_000_000,
      fileTtlSeconds: null,
      status: 'pending',
      fileId: null,
    });
    const dup = await catalog.completeUpload('upload-1', file(1)).catch((e: unknown) => e);
    expect(dup).not.toBeInstanceOf(GatewayError);
    expect((dup as { code?: string }).code).toBe('23505');
    expect((await catalog.getUpload('upload-1'))?.status).toBe('pending');
    await catalog.close();
  });

  it('takes parts racing on two replicas within the declared bytes, each in a slot of its own', async () => {
    const { catalog: a, url } = await freshCatalog();
    const b = new PostgresCatalog({ url, poolSize: 4 });
    await a.init();
    await b.init();
    await a.insertUpload({
      id: 'upload-race',
      tenant: '',
      filename: 'u',
      purpose: 'batch',
      bytes: 10,
      mimeType: 'text/plain',
      createdAt: 1,
      expiresAt: 4_000_000_000,
      fileTtlSeconds: null,
      status: 'pending',
      fileId: null,
    });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).addUploadPart({ id: `part-${i}`, uploadId: 'upload-race', bytes: 1, createdAt: 2 }, 3, 100),
      ),
    );
    expect(outcomes.filter((o) => o === 'added')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'over_bytes')).toHaveLength(10);
    expect((await b.uploadParts('upload-race')).reduce((n, p) => n + p.bytes, 0)).toBe(10);
    // two replicas reserving slots of one upload at once never get the same one
    const slots = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).reservePartSlot('upload-race')),
    );
    expect(new Set(slots).size).toBe(20);
    await a.close();
    await b.close();
  });

  it('runs exclusive work on one replica at a time, and a crashed holder frees it', async () => {
    const { catalog: a, url } = await freshCatalog(1);
    const b = new PostgresCatalog({ url, poolSize: 1 });
    await a.init();
    let release!: () => void;
    const held = a.runExclusive('sweep', async () => {
      // The pool of one connection stays usable while the lock is held on a session of its own.
      await a.stats();
      await new Promise<void>((r) => (release = r));
      return 'a ran';
    });
    await expect.poll(() => release !== undefined).toBe(true);
    expect(await b.runExclusive('sweep', async () => 'b ran')).toBeUndefined();
    expect(await b.runExclusive('other work', async () => 'b ran')).toBe('b ran');
    release();
    expect(await held).toBe('a ran');
    expect(await b.runExclusive('sweep', async () => 'b ran')).toBe('b ran');

    // The holder's session dies (a crashed pod): the lock goes with it.
    const stuck = a.runExclusive('sweep', () => new Promise<string>(() => undefined));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await expect
      .poll(
        async () =>
          (await admin.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted")).rows[0]
            .n,
      )
      .toBe(1);
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted");
    await admin.end();
    await expect.poll(() => b.runExclusive('sweep', async () => 'b took over')).toBe('b took over');
    void stuck;
    await a.close();
    await b.close();
  });

  it('recovers by itself after a restart, answering 503 while the server is away', async () => {
    const { catalog } = await freshCatalog();
    await catalog.init();
    await catalog.upsert(file(7));
    await postgres.cluster().restart();
    // Pooled connections died with the server: a call may fail once, with 503, never worse.
    const first = await catalog.get(file(7).id).catch((e: unknown) => e);
    if (first instanceof Error) expect((first as GatewayError).status).toBe(503);
    await expect.poll(() => catalog.get(file(7).id).catch(() => undefined)).toEqual(file(7));
    await catalog.close();
  });
});

describe('SQLite catalog', () => {
  it('answers every list shape from an index, never sorting, in a catalog of thousands', async () => {
    const file = path.join(await tempDir(), 'catalog.sqlite');
    const catalog = new SqliteCatalog(file);
    await catalog.init();
    const db = new Database(file);
    db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
      INSERT INTO files (id, filename, purpose, bytes, created_at) SELECT printf('file-%032x', i), 'f', 'batch', i, 1700000000 + i / 5 FROM n`);
    db.exec('ANALYZE');
    // Statements are prepared on a shape's first page; the shape changes only what each row selects.
    await catalog.list({ tenant: '', order: 'asc', limit: 1, now: 0 }, FILE_OBJECT);
    const pages = (
      catalog as unknown as { renderedPages: WeakMap<RecordShape, Map<string, { source: string }>> }
    ).renderedPages.get(FILE_OBJECT)!;
    expect(pages.size).toBe(SHAPES.length);
    for (const [shape, stmt] of pages) {
      const plan = db
        .prepare(`EXPLAIN QUERY PLAN ${stmt.source}`)
        .all({ tenant: '', now: 0, limit: 101, purpose: 'batch', afterCreatedAt: 1_700_000_500, afterId: 'file-x' })
        .map((r) => (r as { detail: string }).detail)
        .join('\n');
      // Covering: no row lookup per listed file.
      expect(plan, shape).toMatch(
        new RegExp(
          `USING COVERING INDEX ${shape.includes(':true:') ? 'files_list_by_purpose_time' : 'files_list_by_time'}`,
        ),
      );
      expect(plan, shape).not.toMatch(/TEMP B-TREE/);
      if (shape.endsWith(':true')) expect(plan, shape).toMatch(/ AND \(created_at,id\)[<>]\(\?,\?\)\)/);
    }
    db.close();
    await catalog.close();
  });

  it("replaces an earlier version's narrow list indexes with the covering ones, keeping the rows", async () => {
    const file = path.join(await tempDir(), 'catalog.sqlite');
    const db = new Database(file);
    db.exec(`CREATE TABLE files (id TEXT PRIMARY KEY, tenant TEXT NOT NULL DEFAULT '', filename TEXT NOT NULL, purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER);
      CREATE INDEX files_by_time ON files (tenant, created_at, id);
      CREATE INDEX files_by_purpose_time ON files (tenant, purpose, created_at, id);
      INSERT INTO files (id, filename, purpose, bytes, created_at) VALUES ('file-${'0'.repeat(31)}1', 'a.txt', 'batch', 3, 100);`);
    const indexes = () =>
      db
        .prepare(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'files' AND sql IS NOT NULL ORDER BY name",
        )
        .pluck()
        .all();
    expect(indexes()).toEqual(['files_by_purpose_time', 'files_by_time']);
    const catalog = new SqliteCatalog(file);
    await catalog.init();
    expect(indexes()).toEqual(['files_by_expiry', 'files_list_by_purpose_time', 'files_list_by_time']);
    expect(
      (await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0, purpose: 'batch' })).map(
        (f) => f.filename,
      ),
    ).toEqual(['a.txt']);
    db.close();
    await catalog.close();
  });
});
