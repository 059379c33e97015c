/**
 * Two gateway processes (the built binary) sharing one PostgreSQL catalog and one RGW bucket, as
 * two replicas behind a Service would.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { ROOT, startGatewayProcess, type GatewayProcess } from '../../bench/lib/gateway-process.js';
import { buildOnce } from '../helpers/build.js';
import { tempDir } from '../helpers/gateway.js';
import { filePart, multipartBody, request, upload } from '../helpers/http.js';
import { scrape, sampleValue } from '../helpers/metrics.js';
import { startPostgres, type PgCluster } from '../helpers/postgres.js';
import { createTestBucket, type TestBucket } from '../helpers/s3.js';

const SWEEP_SECONDS = 1;

describe('two replicas sharing PostgreSQL and one bucket', () => {
  let cluster: PgCluster;
  let bucket: TestBucket;
  let dbUrl: string;
  let dir: string;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let db: pg.Client;

  const env = (): Record<string, string> => {
    const s3 = bucket.config();
    return {
      FILES_DATA_DIR: dir,
      FILES_CATALOG_URL: dbUrl,
      FILES_CATALOG_POOL_SIZE: '4',
      FILES_SWEEP_INTERVAL_SECONDS: String(SWEEP_SECONDS),
      // Load shedding off: a busy test machine must not turn these few requests into 503s.
      FILES_MAX_EVENT_LOOP_DELAY_MS: '0',
      FILES_S3_ENDPOINT: s3.endpoint!,
      FILES_S3_BUCKET: s3.bucket,
      FILES_S3_REGION: s3.region,
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_ACCESS_KEY_ID: s3.credentials!.accessKeyId,
      FILES_S3_SECRET_ACCESS_KEY: s3.credentials!.secretAccessKey,
    };
  };
  const logsOf = async (gw: GatewayProcess) =>
    (await fs.readFile(gw.logFile, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  beforeAll(async () => {
    [cluster, bucket, dir] = await Promise.all([
      startPostgres(),
      createTestBucket({ label: 'replicas' }),
      tempDir(),
      buildOnce(),
    ]);
    dbUrl = await cluster.createDatabase('replicas');
    // Both start at once: the migration runs once, under its advisory lock.
    const start = (name: string) => startGatewayProcess({ env: env(), logFile: path.join(dir, `${name}.log`) });
    [a, b] = await Promise.all([start('a'), start('b')]);
    db = new pg.Client({ connectionString: dbUrl });
    // The restart test cuts this session too, after its last use.
    db.on('error', () => undefined);
    await db.connect();
  }, 180_000);
  afterAll(async () => {
    await db?.end();
    await Promise.all([a?.stop(), b?.stop()]);
    await bucket?.destroy();
    await cluster?.stop();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('start with the masked URL in their start-up line, never the password', async () => {
    for (const gw of [a, b]) {
      const text = await fs.readFile(gw.logFile, 'utf8');
      expect(text).not.toContain('not-a-secret-pw');
      const start = (await logsOf(gw)).find((l) => l.address)!;
      expect(start).toMatchObject({
        catalog: 'postgres',
        catalogLocation: expect.stringContaining('postgres:****@127.0.0.1'),
      });
    }
  });

  it('a file uploaded through A is listed, retrieved, downloaded and deleted through B', async () => {
    const created = (
      await upload(a.url, [{ name: 'purpose', value: 'assistants' }, filePart('shared bytes', 'shared.txt')])
    ).json();
    const listed = (await request(`${b.url}/v1/files`)).json().data.map((f: { id: string }) => f.id);
    expect(listed).toContain(created.id);
    expect((await request(`${b.url}/v1/files/${created.id}`)).json()).toEqual(created);
    expect((await request(`${b.url}/v1/files/${created.id}/content`)).body.toString()).toBe('shared bytes');
    expect((await request(`${b.url}/v1/files/${created.id}`, { method: 'DELETE' })).json()).toMatchObject({
      id: created.id,
      deleted: true,
    });
    expect((await request(`${a.url}/v1/files/${created.id}`)).status).toBe(404);
  });

  it('an upload created on A takes parts on B and completes on A', async () => {
    const json = (url: string, body: unknown) =>
      request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const created = await json(`${a.url}/v1/uploads`, {
      bytes: 11,
      filename: 'parts.txt',
      mime_type: 'text/plain',
      purpose: 'assistants',
    });
    expect(created.status, created.body.toString()).toBe(200);
    const uploadId = created.json().id;
    const partIds: string[] = [];
    for (const chunk of ['hello ', 'world']) {
      const { body, contentType } = multipartBody([{ name: 'data', filename: 'chunk', data: Buffer.from(chunk) }]);
      const part = await request(`${b.url}/v1/uploads/${uploadId}/parts`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
      expect(part.status, part.body.toString()).toBe(200);
      partIds.push(part.json().id);
    }
    const done = await json(`${a.url}/v1/uploads/${uploadId}/complete`, { part_ids: partIds });
    expect(done.status, done.body.toString()).toBe(200);
    expect(done.json()).toMatchObject({ status: 'completed', file: { bytes: 11, filename: 'parts.txt' } });
    expect((await request(`${b.url}/v1/files/${done.json().file.id}/content`)).body.toString()).toBe('hello world');
  });

  it('reindex rebuilds the same catalog from the bucket into an empty PostgreSQL database', async () => {
    const fresh = await cluster.createDatabase('reindexed');
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(ROOT, 'dist', 'main.js'), 'reindex'], {
      env: { PATH: process.env.PATH!, ...env(), FILES_CATALOG_URL: fresh },
    });
    const rowsOf = async (client: pg.Client) =>
      (await client.query('SELECT id, tenant, filename, purpose, bytes, created_at, expires_at FROM files ORDER BY id'))
        .rows;
    const live = await rowsOf(db);
    expect(live.length).toBeGreaterThan(0);
    expect(stdout).toContain(`done, ${live.length} files`);
    expect(stdout).not.toContain('not-a-secret-pw');
    const rebuilt = new pg.Client({ connectionString: fresh });
    await rebuilt.connect();
    expect(await rowsOf(rebuilt)).toEqual(live);
    expect((await rebuilt.query('SELECT files FROM file_totals')).rows[0].files).toBe(String(live.length));
    await rebuilt.end();
  });

  it('with both sweepers running, each expired file is deleted exactly once', async () => {
    const deletes = async () => {
      let n = 0;
      for (const gw of [a, b])
        n += sampleValue(await scrape(gw.url), 'files_gateway_store_call_duration_seconds_count', {
          operation: 'DeleteObjectCommand',
          outcome: 'success',
        });
      return n;
    };
    // What deleting one file costs the store, measured, so the sweep's count can be checked against it.
    const probe = (await upload(a.url, [{ name: 'purpose', value: 'batch' }, filePart('probe')])).json();
    const before = await deletes();
    await request(`${b.url}/v1/files/${probe.id}`, { method: 'DELETE' });
    const perFile = (await deletes()) - before;
    expect(perFile).toBeGreaterThan(0);

    const doomed: string[] = [];
    for (let i = 0; i < 30; i++) {
      const gw = i % 2 ? a : b;
      const res = await upload(gw.url, [
        { name: 'purpose', value: 'batch' },
        { name: 'expires_after[anchor]', value: 'created_at' },
        { name: 'expires_after[seconds]', value: '3600' },
        filePart(`doomed ${i}`),
      ]);
      doomed.push(res.json().id);
    }
    const kept = (await upload(a.url, [{ name: 'purpose', value: 'batch' }, filePart('kept')])).json();
    const seen = [(await logsOf(a)).length, (await logsOf(b)).length];
    const startDeletes = await deletes();
    // An hour passes for the doomed files.
    await db.query('UPDATE files SET expires_at = $1 WHERE id = ANY($2)', [Math.floor(Date.now() / 1000) - 1, doomed]);
    await expect
      .poll(
        async () => (await db.query('SELECT count(*)::int AS n FROM files WHERE id = ANY($1)', [doomed])).rows[0].n,
        { timeout: 20_000 },
      )
      .toBe(0);
    // Two more sweep periods: a late second sweeper would show up now.
    await new Promise((r) => setTimeout(r, 2.5 * SWEEP_SECONDS * 1000));
    expect((await deletes()) - startDeletes).toBe(doomed.length * perFile);
    const sweepLines = (await logsOf(a)).slice(seen[0]).concat((await logsOf(b)).slice(seen[1]));
    const removed = sweepLines
      .filter((l) => l.msg === 'expired files removed, finished uploads released')
      .reduce((n, l) => n + Number(l.removed), 0);
    expect(removed).toBe(doomed.length);
    expect(sweepLines.filter((l) => Number(l.level) >= 50)).toEqual([]);
    expect((await request(`${b.url}/v1/files/${kept.id}`)).status).toBe(200);
  });

  it('a PostgreSQL restart under load answers 503, never 500, and both recover without a restart', async () => {
    const file = (await upload(a.url, [{ name: 'purpose', value: 'assistants' }, filePart('survivor')])).json();
    const statuses = new Map<number, number>();
    let running = true;
    const loop = async (gw: GatewayProcess) => {
      while (running) {
        for (const url of [`${gw.url}/v1/files?limit=5`, `${gw.url}/v1/files/${file.id}`]) {
          const res = await request(url);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 503) expect(res.json().error.code).toBe('service_unavailable');
        }
      }
    };
    const loops = [loop(a), loop(b), loop(a), loop(b)];
    await new Promise((r) => setTimeout(r, 300));
    await cluster.restart();
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await Promise.all(loops);
    expect([...statuses.keys()].sort()).toEqual([200, 503]);
    for (const gw of [a, b]) {
      await expect
        .poll(async () => (await request(`${gw.url}/v1/files/${file.id}`)).status, { timeout: 15_000 })
        .toBe(200);
      expect((await request(`${gw.url}/readyz`)).status).toBe(200);
    }
  });
});
