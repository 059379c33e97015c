/**
 * `npm run bench:catalog`: the catalog at a million files, on SQLite and on PostgreSQL, through the
 * gateway's real HTTP app (the built binary), against a bare fastify route on the same machine in the
 * same run. Load comes from autocannon in a process of its own. Never part of `npm test`.
 *
 * Target (docs/performance.md#where-every-figure-stands): a list page of 100 costs no more than 3x
 * a retrieve by id, whatever the filter, order or cursor depth. Each shape's cost is the median of its rounds' list throughput
 * against the median of the retrieves measured right before them. The paired cost beside it is the
 * median of each round's own ratio, which this machine's slow periods (a retrieve in a fast one, the
 * page after it in a slow one) move less; the target is judged on the first, as in `npm run bench`.
 * Many short rounds rather than a few long ones, for the same reason: a slow period then spoils a
 * few pairs of a shape, not a third of them.
 *
 * Environment (all optional):
 *   BENCH_CATALOG_FILES=1000000   rows in each catalog (at least 5000: see FILES)
 *   BENCH_CATALOG_SECONDS=2       load duration of each figure
 *   BENCH_CATALOG_CONNECTIONS=8   autocannon connections
 *   BENCH_CATALOG_ROUNDS=12       rounds over every list shape; figures are medians over them
 *   BENCH_CATALOG_ONLY=sqlite,postgres
 *   BENCH_TMP                     where data goes (default: the OS temp dir)
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { FileRecord } from '../src/catalog/catalog.js';
import { PostgresCatalog } from '../src/catalog/postgres-catalog.js';
import { SqliteCatalog } from '../src/catalog/sqlite-catalog.js';
import { newFileId } from '../src/files/ids.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { env } from './lib/env.js';
import { ROOT, startGatewayProcess } from './lib/gateway-process.js';
import { load, startBareServer } from './lib/load.js';
import { runTempDir } from './lib/tmp.js';

/**
 * Every list shape must come back as a full page of 100: the deep pages filtered by purpose (one
 * row in five) start a tenth of the way from either end, so a tenth of the rows must hold 100 of
 * one purpose.
 */
const FILES = env.int('BENCH_CATALOG_FILES', 1_000_000, { min: 5000 });
const SECONDS = env.int('BENCH_CATALOG_SECONDS', 2);
const CONNECTIONS = env.int('BENCH_CATALOG_CONNECTIONS', 8);
const ROUNDS = env.int('BENCH_CATALOG_ROUNDS', 12);
const ONLY = env.listOf('BENCH_CATALOG_ONLY', ['sqlite', 'postgres'] as const, ['sqlite', 'postgres']);
const PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data'];
const T0 = 1_750_000_000;
const log = (msg: string) => process.stderr.write(`[bench:catalog] ${msg}\n`);

/** Row i of the catalog: 20 files per second (ties on created_at), purposes round robin, ids in time order. */
function row(i: number): FileRecord {
  const createdAt = T0 + Math.floor(i / 20);
  return {
    id: newFileId(createdAt * 1000 + (i % 20)),
    tenant: '',
    filename: `f${i}.jsonl`,
    purpose: PURPOSES[i % PURPOSES.length]!,
    bytes: 1000 + i,
    createdAt,
    expiresAt: null,
  };
}

/** The same rows for both catalogs; ids[i] is row i's id. */
const ids: string[] = [];

async function fillSqlite(file: string): Promise<void> {
  const catalog = new SqliteCatalog(file);
  await catalog.init();
  await catalog.close();
  const db = new Database(file);
  const insert = db.prepare(
    'INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  db.transaction(() => {
    for (let i = 0; i < FILES; i++) {
      const r = row(i);
      ids[i] = r.id;
      insert.run(r.id, r.tenant, r.filename, r.purpose, r.bytes, r.createdAt, r.expiresAt);
    }
  })();
  db.exec('ANALYZE');
  db.close();
}

async function fillPostgres(url: string): Promise<void> {
  const catalog = new PostgresCatalog({ url, poolSize: 1 });
  await catalog.init();
  await catalog.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  // One transaction, 10,000 rows a statement as arrays (unnest): the totals trigger runs per statement.
  await client.query('BEGIN');
  for (let start = 0; start < FILES; start += 10_000) {
    const rows = Array.from({ length: Math.min(10_000, FILES - start) }, (_, k) => row(start + k));
    for (const [k, r] of rows.entries()) ids[start + k] = r.id;
    await client.query(
      `INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, expires_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[])`,
      [
        rows.map((r) => r.id),
        rows.map((r) => r.tenant),
        rows.map((r) => r.filename),
        rows.map((r) => r.purpose),
        rows.map((r) => r.bytes),
        rows.map((r) => r.createdAt),
        rows.map((r) => r.expiresAt),
      ],
    );
  }
  await client.query('COMMIT');
  await client.query('VACUUM ANALYZE files');
  await client.end();
}

interface Figure {
  catalog: string;
  what: string;
  /** Medians over the rounds. */
  rps: number;
  p99Ms: number;
  /** Median requests per second of the retrieve by id measured right before each round's list. */
  retrieveRps: number;
  rounds: { rps: number; p99Ms: number; retrieveRps: number }[];
}

/** What the gateway answered, for the bare route to send the same bytes. */
const bodies: { file?: unknown; list?: unknown } = {};

async function checkedLoad(url: string, list: boolean): Promise<{ rps: number; p99Ms: number }> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { data?: unknown[] };
  if (list && body.data?.length !== 100) throw new Error(`${url}: not a full page`);
  if (list) bodies.list ??= body;
  else bodies.file ??= body;
  return load(url, SECONDS, CONNECTIONS);
}

/**
 * Each list shape right after a retrieve by id on the same gateway, ROUNDS times over: on a busy
 * machine the ratio of neighbours is steadier than either figure alone, and medians over rounds
 * steadier than any one pair.
 */
async function measure(catalog: string, base: string, figures: Figure[]): Promise<void> {
  const retrieveUrl = `${base}/v1/files/${ids[Math.floor(FILES / 2)]}`;
  const deep = { asc: ids[Math.floor(FILES * 0.9)]!, desc: ids[Math.floor(FILES * 0.1)]! };
  // Warm up (JIT, page cache, prepared statements), unrecorded.
  await load(retrieveUrl, 3, CONNECTIONS);
  await load(`${base}/v1/files?limit=100`, 3, CONNECTIONS);
  const shapes = (['desc', 'asc'] as const).flatMap((order) =>
    [undefined, 'batch'].flatMap((purpose) =>
      [undefined, deep[order]].map((after) => ({
        what: `list 100 ${order}${purpose ? ' purpose' : ''}${after ? ' deep after' : ''}`,
        query: new URLSearchParams({ limit: '100', order, ...(purpose && { purpose }), ...(after && { after }) }),
      })),
    ),
  );
  const rounds = new Map<string, Figure['rounds']>(shapes.map((s) => [s.what, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const { what, query } of shapes) {
      const retrieve = await checkedLoad(retrieveUrl, false);
      const list = await checkedLoad(`${base}/v1/files?${query}`, true);
      rounds.get(what)!.push({ ...list, retrieveRps: retrieve.rps });
      log(
        `${catalog} round ${round}: retrieve ${retrieve.rps.toFixed(0)} req/s p99 ${retrieve.p99Ms} ms; ${what} ${list.rps.toFixed(0)} req/s p99 ${list.p99Ms} ms`,
      );
    }
  }
  for (const [what, rs] of rounds) {
    figures.push({
      catalog,
      what,
      rps: median(rs.map((r) => r.rps)),
      p99Ms: median(rs.map((r) => r.p99Ms)),
      retrieveRps: median(rs.map((r) => r.retrieveRps)),
      rounds: rs,
    });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const tmp = await runTempDir('files-gateway-bench-catalog-');
  const figures: Figure[] = [];
  const fills: Record<string, number> = {};
  const started = Date.now();
  try {
    for (const kind of ONLY) {
      const dataDir = path.join(tmp, kind);
      await fs.mkdir(dataDir);
      let catalogUrl: string;
      let stopDb: () => Promise<void> = async () => undefined;
      const t = Date.now();
      log(`${kind}: inserting ${FILES} files`);
      if (kind === 'sqlite') {
        catalogUrl = path.join(dataDir, 'catalog.sqlite');
        await fillSqlite(catalogUrl);
      } else {
        const cluster = await startPostgres();
        stopDb = () => cluster.stop();
        catalogUrl = await cluster.createDatabase('bench');
        await fillPostgres(catalogUrl);
      }
      fills[kind] = (Date.now() - t) / 1000;
      log(`${kind}: filled in ${fills[kind]!.toFixed(1)} s`);
      const gw = await startGatewayProcess({
        // Load shedding off: this measures the catalog, not the overload guard.
        env: { FILES_DATA_DIR: dataDir, FILES_CATALOG_URL: catalogUrl, FILES_MAX_EVENT_LOOP_DELAY_MS: '0' },
        logFile: path.join(tmp, `${kind}.log`),
      });
      try {
        await measure(kind, gw.url, figures);
      } finally {
        await gw.stop();
        await stopDb();
      }
    }
    // The framework's own cost for the same answers: a bare fastify route with constant bodies.
    const bare = await startBareServer({ file: bodies.file, list: bodies.list });
    try {
      const rs: Figure['rounds'] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const file = await load(`${bare.url}/file`, SECONDS, CONNECTIONS);
        const list = await load(`${bare.url}/list`, SECONDS, CONNECTIONS);
        rs.push({ ...list, retrieveRps: file.rps });
        log(
          `bare fastify round ${round + 1}: the file object ${file.rps.toFixed(0)} req/s, the page of 100 ${list.rps.toFixed(0)} req/s`,
        );
      }
      figures.push({
        catalog: 'bare fastify',
        what: 'list 100',
        rps: median(rs.map((r) => r.rps)),
        p99Ms: median(rs.map((r) => r.p99Ms)),
        retrieveRps: median(rs.map((r) => r.retrieveRps)),
        rounds: rs,
      });
    } finally {
      await bare.stop();
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }

  const lines = [
    '| catalog | request | req/s | p99 ms | cost vs retrieve by id | paired |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  const paired = (f: Figure) => median(f.rounds.map((r) => r.retrieveRps / r.rps));
  for (const catalog of [...new Set(figures.map((f) => f.catalog))]) {
    const own = figures.filter((f) => f.catalog === catalog);
    const retrieves = own.flatMap((f) => f.rounds.map((r) => r.retrieveRps));
    lines.push(
      `| ${catalog} | retrieve by id (median of ${retrieves.length}) | ${median(retrieves).toFixed(0)} | | 1x | |`,
    );
    for (const f of own)
      lines.push(
        `| ${catalog} | ${f.what} | ${f.rps.toFixed(0)} | ${f.p99Ms} | ${(f.retrieveRps / f.rps).toFixed(2)}x | ${paired(f).toFixed(2)}x |`,
      );
  }
  const pages = figures.filter((f) => f.catalog !== 'bare fastify');
  const worst = Math.max(...pages.map((f) => f.retrieveRps / f.rps));
  const summary =
    `${FILES} files per catalog (filled in ${Object.entries(fills)
      .map(([k, s]) => `${k} ${s.toFixed(0)} s`)
      .join(', ')}); ` +
    `${ROUNDS} rounds of ${SECONDS} s per figure (medians), ${CONNECTIONS} connections; ${os.cpus().length} cores (${os.cpus()[0]?.model.trim()}), load average ${os.loadavg()[0]!.toFixed(1)}, Node ${process.version}; ` +
    `worst list page: ${worst.toFixed(2)}x a retrieve by id (target <= 3x): ${worst <= 3 ? 'met' : 'NOT met'}; ` +
    `paired: worst ${Math.max(...pages.map(paired)).toFixed(2)}x`;
  const out = path.join(
    ROOT,
    'bench',
    'results',
    `catalog-scale-${new Date().toISOString().replaceAll(':', '-')}.json`,
  );
  await fs.mkdir(path.dirname(out), { recursive: true });
  await fs.writeFile(
    out,
    JSON.stringify(
      {
        files: FILES,
        seconds: SECONDS,
        connections: CONNECTIONS,
        rounds: ROUNDS,
        fills,
        figures,
        durationSeconds: (Date.now() - started) / 1000,
      },
      null,
      2,
    ),
  );
  process.stdout.write(`\n${lines.join('\n')}\n\n${summary}\nresults: ${path.relative(ROOT, out)}\n`);
}

await main();
