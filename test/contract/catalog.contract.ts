import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Catalog, FileRecord } from '../../src/catalog/catalog.js';

const record = (id: string, createdAt: number, extra: Partial<FileRecord> = {}): FileRecord => ({
  id,
  filename: `${id}.txt`,
  purpose: 'assistants',
  bytes: 1,
  createdAt,
  expiresAt: null,
  ...extra,
});

const hexId = (n: number) => `file-${n.toString(16).padStart(32, '0')}`;

/** The Catalog contract: every implementation (sqlite, postgres) must pass it unchanged. */
export function catalogContract(name: string, makeCatalog: () => Promise<Catalog>) {
  describe(`Catalog contract (${name})`, () => {
    let catalog: Catalog;
    beforeEach(async () => {
      catalog = await makeCatalog();
      await catalog.init();
    });
    afterEach(async () => {
      await catalog.close();
    });

    it('stores, reads back, replaces and deletes a row', async () => {
      const r = record(hexId(1), 100, { filename: 'naïve 📄.txt', bytes: 2 ** 40, expiresAt: 200 });
      await catalog.upsert(r);
      expect(await catalog.get(r.id)).toEqual(r);
      await catalog.upsert({ ...r, purpose: 'batch' });
      expect((await catalog.get(r.id))?.purpose).toBe('batch');
      expect(await catalog.delete(r.id)).toBe(true);
      expect(await catalog.delete(r.id)).toBe(false);
      expect(await catalog.get(r.id)).toBeUndefined();
    });

    it('pages by (created_at, id) in both orders without skipping or repeating ties', async () => {
      const rows = Array.from({ length: 23 }, (_, i) => record(hexId(1000 - i), 50 + (i % 3)));
      for (const r of rows) await catalog.upsert(r);
      for (const order of ['asc', 'desc'] as const) {
        const expected = [...rows]
          .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
          .map((r) => r.id);
        if (order === 'desc') expected.reverse();
        const seen: string[] = [];
        let after: FileRecord | undefined;
        for (;;) {
          const page = await catalog.list({ order, limit: 4, after: after && { createdAt: after.createdAt, id: after.id }, now: 0 });
          seen.push(...page.map((r) => r.id));
          if (page.length < 4) break;
          after = page.at(-1);
        }
        expect(seen).toEqual(expected);
      }
    });

    it('filters by purpose and hides expired rows from lists', async () => {
      await catalog.upsert(record(hexId(1), 10, { purpose: 'batch', expiresAt: 20 }));
      await catalog.upsert(record(hexId(2), 11, { purpose: 'batch' }));
      await catalog.upsert(record(hexId(3), 12));
      const ids = async (q: Partial<Parameters<Catalog['list']>[0]>) =>
        (await catalog.list({ order: 'asc', limit: 10, now: 0, ...q })).map((r) => r.id);
      expect(await ids({ purpose: 'batch' })).toEqual([hexId(1), hexId(2)]);
      expect(await ids({ now: 20 })).toEqual([hexId(2), hexId(3)]);
      expect(await ids({ now: 20, purpose: 'batch' })).toEqual([hexId(2)]);
      expect(await ids({ purpose: 'vision' })).toEqual([]);
    });

    it('returns expired rows oldest expiry first, up to a limit', async () => {
      await catalog.upsert(record(hexId(1), 1, { expiresAt: 30 }));
      await catalog.upsert(record(hexId(2), 1, { expiresAt: 10 }));
      await catalog.upsert(record(hexId(3), 1, { expiresAt: 20 }));
      await catalog.upsert(record(hexId(4), 1));
      expect((await catalog.expired(25, 10)).map((r) => r.id)).toEqual([hexId(2), hexId(3)]);
      expect((await catalog.expired(100, 2)).map((r) => r.id)).toEqual([hexId(2), hexId(3)]);
    });
  });
}
