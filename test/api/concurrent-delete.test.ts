/**
 * Concurrent removals of one file: however many DELETEs (and sweeps) race, on one gateway or on two
 * replicas sharing a catalog, exactly one of them removes the file and the others see it not found.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Catalog } from '../../src/catalog/catalog.js';
import { PostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { postgresForFile } from '../helpers/catalog.js';
import { type Gateway, type GatewayOptions, startGateway } from '../helpers/gateway.js';
import { filePart, type RawResponse, request, upload } from '../helpers/http.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';

const CALLERS = 10;

async function uploadOne(gw: Gateway, extra: { name: string; value: string }[] = []): Promise<string> {
  const res = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, ...extra, filePart('going away')]);
  expect(res.status, res.body.toString()).toBe(200);
  return res.json().id;
}

/** Exactly one 200 {deleted: true}; every other answer the usual 404 envelope. */
function expectOneDeleted(answers: RawResponse[], id: string): void {
  const ok = answers.filter((r) => r.status === 200);
  const notFound = answers.filter((r) => r.status === 404);
  expect(ok, `statuses: ${answers.map((r) => r.status).join(' ')}`).toHaveLength(1);
  expect(ok[0]!.json()).toEqual({ id, object: 'file', deleted: true });
  expect(notFound).toHaveLength(answers.length - 1);
  for (const r of notFound)
    expect(r.json().error).toMatchObject({
      type: 'invalid_request_error',
      code: 'file_not_found',
      message: `File ${id} not found.`,
    });
}

/** The file is gone for good: no row, no bytes, 404 to a reader. */
async function expectGone(gw: Gateway, id: string): Promise<void> {
  expect(await gw.catalog.get(id)).toBeUndefined();
  await expect(gw.store.stat(id)).rejects.toThrow(/not found/);
  expect((await request(`${gw.url}/v1/files/${id}`)).status).toBe(404);
  expect((await request(`${gw.url}/v1/files/${id}/content`)).status).toBe(404);
}

const deleteFrom = (gws: Gateway[], id: string) =>
  Promise.all(
    Array.from({ length: CALLERS }, (_, i) =>
      request(`${gws[i % gws.length]!.url}/v1/files/${id}`, { method: 'DELETE' }),
    ),
  );

describe('concurrent DELETEs of one file', () => {
  let bucket: TestBucket;
  const postgres = postgresForFile();
  beforeAll(async () => {
    bucket = await createTestBucket({ label: 'deletes' });
  });
  afterAll(async () => {
    await bucket?.destroy();
  });

  const s3Options = (prefix: string): GatewayOptions => ({ s3: bucket.config({ prefix, partSizeBytes: 5 * MiB }) });

  for (const backend of ['fs', 's3'] as const) {
    it(`answer one 200 and ${CALLERS - 1} 404s over real sockets (${backend} store, SQLite)`, async () => {
      const gw = await startGateway(backend === 's3' ? s3Options(`del-${randomBytes(4).toString('hex')}/`) : {});
      try {
        for (let round = 0; round < 5; round++) {
          const id = await uploadOne(gw);
          expectOneDeleted(await deleteFrom([gw], id), id);
          await expectGone(gw, id);
        }
        expect(await gw.catalog.stats()).toEqual({ files: 0, bytes: 0 });
      } finally {
        await gw.close();
      }
    });
  }

  it('answer one 200 across two replicas sharing one PostgreSQL catalog and one bucket', async () => {
    const url = await postgres.freshDatabase();
    const prefix = `replicas-${randomBytes(4).toString('hex')}/`;
    const start = () =>
      startGateway({ ...s3Options(prefix), catalog: () => new PostgresCatalog({ url, poolSize: 4 }) });
    const a = await start();
    const b = await start();
    try {
      for (let round = 0; round < 5; round++) {
        const id = await uploadOne(round % 2 ? a : b);
        expectOneDeleted(await deleteFrom([a, b], id), id);
        await expectGone(a, id);
        await expectGone(b, id);
      }
      expect(await a.catalog.stats()).toEqual({ files: 0, bytes: 0 });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('the expiry sweeper and a DELETE racing on an expiring file', () => {
  const HOUR = 3600;
  const expiring = [
    { name: 'expires_after[anchor]', value: 'created_at' },
    { name: 'expires_after[seconds]', value: String(HOUR) },
  ];

  /**
   * A gateway on the fs store and SQLite with a clock the test moves, and `pause(point, id, fn)`: the
   * next call at `point` for `id` first runs `fn`. Points: 'write', the first change anyone makes for
   * the file (a catalog write or the store's delete), and 'bytes', the store's delete.
   */
  async function racingGateway() {
    let nowMs = Date.now();
    const pauses = new Map<string, () => Promise<void>>();
    const hit = async (point: string, id: string) => {
      const fn = pauses.get(`${point}:${id}`);
      pauses.delete(`${point}:${id}`);
      await fn?.();
    };
    const pausing = <T extends object>(target: T, methods: Record<string, string[]>): T =>
      new Proxy(target, {
        get(obj, prop, receiver) {
          const value = Reflect.get(obj, prop, receiver);
          const points = typeof prop === 'string' ? methods[prop] : undefined;
          if (!points || typeof value !== 'function') return value;
          return async (id: string, ...rest: unknown[]) => {
            for (const point of points) await hit(point, id);
            return value.call(obj, id, ...rest);
          };
        },
      });
    const gw = await startGateway({
      now: () => nowMs,
      store: (dataDir) => pausing<BlobStore>(new FsBlobStore(dataDir), { delete: ['write', 'bytes'] }),
      catalog: () => pausing<Catalog>(new SqliteCatalog(':memory:'), { claimRemoval: ['write'], delete: ['write'] }),
    });
    return {
      gw,
      expire: () => {
        nowMs += (HOUR + 1) * 1000;
      },
      pause: (point: 'write' | 'bytes', id: string, fn: () => Promise<void>) => pauses.set(`${point}:${id}`, fn),
    };
  }

  it('the sweeper wins when the file expires after the DELETE looked it up: the DELETE answers 404', async () => {
    const { gw, expire, pause } = await racingGateway();
    try {
      const id = await uploadOne(gw, expiring);
      let swept: unknown;
      pause('write', id, async () => {
        expire();
        swept = await gw.files.sweep();
      });
      const del = await request(`${gw.url}/v1/files/${id}`, { method: 'DELETE' });
      expect(swept).toEqual({ files: 1, uploads: 0 });
      expect(del.status).toBe(404);
      expect(del.json().error).toMatchObject({ code: 'file_not_found', message: `File ${id} not found.` });
      await expectGone(gw, id);
      expect(await gw.catalog.stats()).toEqual({ files: 0, bytes: 0 });
    } finally {
      await gw.close();
    }
  });

  it('the DELETE wins when the sweeper comes while it removes the bytes: the sweep removes nothing', async () => {
    const { gw, expire, pause } = await racingGateway();
    try {
      const id = await uploadOne(gw, expiring);
      let swept: unknown;
      pause('bytes', id, async () => {
        expire();
        swept = await gw.files.sweep();
      });
      const del = await request(`${gw.url}/v1/files/${id}`, { method: 'DELETE' });
      expect(del.status).toBe(200);
      expect(del.json()).toEqual({ id, object: 'file', deleted: true });
      expect(swept).toEqual({ files: 0, uploads: 0 });
      await expectGone(gw, id);
      expect(await gw.files.sweep()).toEqual({ files: 0, uploads: 0 });
      expect(await gw.catalog.stats()).toEqual({ files: 0, bytes: 0 });
    } finally {
      await gw.close();
    }
  });
});
