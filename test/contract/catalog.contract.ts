import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type Catalog,
  type FileRecord,
  type RecordShape,
  REMOVAL_CLAIMED,
  type UploadRecord,
} from '../../src/catalog/catalog.js';
import { FILE_OBJECT } from '../../src/api/wire.js';
import { listRecords } from '../helpers/catalog.js';

const record = (id: string, createdAt: number, extra: Partial<FileRecord> = {}): FileRecord => ({
  id,
  tenant: '',
  filename: `${id}.txt`,
  purpose: 'assistants',
  bytes: 1,
  createdAt,
  expiresAt: null,
  ...extra,
});

const hexId = (n: number) => `file-${n.toString(16).padStart(32, '0')}`;

const upload = (n: number, extra: Partial<UploadRecord> = {}): UploadRecord => ({
  id: `upload_${n.toString(16).padStart(32, '0')}`,
  tenant: '',
  filename: 'big 📦.jsonl',
  purpose: 'batch',
  bytes: 10,
  mimeType: 'application/jsonl',
  createdAt: 100,
  expiresAt: 3700,
  fileTtlSeconds: 2_592_000,
  status: 'pending',
  fileId: null,
  ...extra,
});
const part = (uploadId: string, n: number, bytes: number) => ({ id: `part_${n}`, uploadId, bytes, createdAt: 100 + n });

/** What list must return for a row: JSON.stringify of the object the shape makes of it. */
const rendered = (shape: RecordShape, r: FileRecord) =>
  JSON.stringify(
    Object.fromEntries(shape.map(([key, source]) => [key, 'field' in source ? r[source.field] : source.constant])),
  );

/** Keys and constants that would break out of an SQL string literal or a JSON string if pasted in raw. */
const HOSTILE_SHAPE: RecordShape = [
  ["it's", { field: 'filename' }],
  ['"q" \\ \n', { constant: "'); DROP TABLE files; --" }],
  ['ünï 📄', { constant: '"\\\u0001' }],
  ['none', { constant: null }],
  ['tenant', { field: 'tenant' }],
  ['bytes', { field: 'bytes' }],
  ['expires', { field: 'expiresAt' }],
];

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
      const r = record(hexId(1), 100, { filename: 'naïve 📄 "q" \\ \t\u0001.txt', bytes: 2 ** 40, expiresAt: 200 });
      await catalog.upsert(r);
      expect(await catalog.get(r.id)).toEqual(r);
      expect(await listRecords(catalog, { tenant: '', order: 'asc', limit: 1, now: 0 })).toEqual([r]);
      await catalog.upsert({ ...r, purpose: 'batch' });
      expect((await catalog.get(r.id))?.purpose).toBe('batch');
      expect(await catalog.delete(r.id)).toBe(true);
      expect(await catalog.delete(r.id)).toBe(false);
      expect(await catalog.get(r.id)).toBeUndefined();
    });

    it('lets exactly one of many concurrent claims remove a row, and none after it', async () => {
      const live = record(hexId(1), 100);
      const expiring = record(hexId(2), 100, { expiresAt: 5000 });
      const expired = record(hexId(3), 100, { expiresAt: 150 });
      for (const r of [live, expiring, expired]) await catalog.upsert(r);
      for (const r of [live, expiring, expired]) {
        const claims = await Promise.all(Array.from({ length: 10 }, () => catalog.claimRemoval(r.id)));
        expect(claims.filter(Boolean), r.id).toHaveLength(1);
        expect(await catalog.claimRemoval(r.id)).toBe(false);
      }
      expect(await catalog.claimRemoval(hexId(9))).toBe(false);
      // A claimed row is expired at the epoch: hidden from lists, first for the sweeper, still counted.
      expect((await catalog.get(live.id))?.expiresAt).toBe(REMOVAL_CLAIMED);
      expect(await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 200 })).toEqual([]);
      expect((await catalog.expired(200, 10)).map((r) => r.id).sort()).toEqual([live.id, expiring.id, expired.id]);
      expect(await catalog.stats()).toEqual({ files: 3, bytes: 3 });
      expect(await catalog.delete(live.id)).toBe(true);
      expect(await catalog.claimRemoval(live.id)).toBe(false);
      expect(await catalog.stats()).toEqual({ files: 2, bytes: 2 });
    });

    it('claims each of many rows once while claims of all of them race', async () => {
      const rows = Array.from({ length: 20 }, (_, i) => record(hexId(i + 1), 100 + i));
      for (const r of rows) await catalog.upsert(r);
      const claims = await Promise.all(
        rows.flatMap((r) => [1, 2, 3].map(async () => [r.id, await catalog.claimRemoval(r.id)] as const)),
      );
      for (const r of rows)
        expect(
          claims.filter(([id, won]) => id === r.id && won),
          r.id,
        ).toHaveLength(1);
    });

    it('pages by (created_at, id) in both orders without skipping or repeating ties', async () => {
      const rows = Array.from({ length: 23 }, (_, i) => record(hexId(1000 - i), 50 + (i % 3)));
      for (const r of rows) await catalog.upsert(r);
      for (const order of ['asc', 'desc'] as const) {
        const expected = [...rows].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)).map((r) => r.id);
        if (order === 'desc') expected.reverse();
        const seen: string[] = [];
        let after: FileRecord | undefined;
        for (;;) {
          const page = await listRecords(catalog, {
            tenant: '',
            order,
            limit: 4,
            after: after && { createdAt: after.createdAt, id: after.id },
            now: 0,
          });
          seen.push(...page.map((r) => r.id));
          if (page.length < 4) break;
          after = page.at(-1);
        }
        expect(seen).toEqual(expected);
      }
    });

    it("continues after the cursor row's own position, or after the given one once that row is gone", async () => {
      for (let i = 0; i < 6; i++) await catalog.upsert(record(hexId(10 + i), 100 + i));
      const pageAfter = async (createdAt: number, id: string, order: 'asc' | 'desc' = 'asc', tenant = '') =>
        (await listRecords(catalog, { tenant, order, limit: 10, now: 0, after: { createdAt, id } })).map((r) => r.id);
      // The row is there: its created_at (102) wins over a wrong fallback, in both orders.
      expect(await pageAfter(0, hexId(12))).toEqual([hexId(13), hexId(14), hexId(15)]);
      expect(await pageAfter(999, hexId(12), 'desc')).toEqual([hexId(11), hexId(10)]);
      // Another tenant's row does not place this tenant's cursor: the fallback does.
      await catalog.upsert(record(hexId(99), 500, { tenant: 'team-a' }));
      expect(await pageAfter(103, hexId(99))).toEqual([hexId(14), hexId(15)]);
      // Deleted between two pages: the fallback keeps the place, skipping nothing.
      await catalog.delete(hexId(12));
      expect(await pageAfter(102, hexId(12))).toEqual([hexId(13), hexId(14), hexId(15)]);
      expect(await pageAfter(102, hexId(12), 'desc')).toEqual([hexId(11), hexId(10)]);
    });

    it("lists only the asked tenant's rows, paging each tenant on its own", async () => {
      for (let i = 0; i < 6; i++)
        await catalog.upsert(record(hexId(100 + i), 10, { tenant: i % 2 ? 'team-a' : 'team-b' }));
      await catalog.upsert(record(hexId(200), 10));
      const page = async (tenant: string, after?: FileRecord) =>
        listRecords(catalog, {
          tenant,
          order: 'asc',
          limit: 2,
          now: 0,
          after: after && { createdAt: after.createdAt, id: after.id },
        });
      const first = await page('team-a');
      expect(first.map((r) => r.id)).toEqual([hexId(101), hexId(103)]);
      expect((await page('team-a', first[1])).map((r) => r.id)).toEqual([hexId(105)]);
      expect((await page('')).map((r) => r.id)).toEqual([hexId(200)]);
      expect((await page('team-c')).map((r) => r.id)).toEqual([]);
      expect((await catalog.get(hexId(101)))?.tenant).toBe('team-a');
      await catalog.insertUpload(upload(9, { tenant: 'team-a' }));
      expect((await catalog.getUpload(upload(9).id))?.tenant).toBe('team-a');
    });

    it('filters by purpose and hides expired rows from lists', async () => {
      await catalog.upsert(record(hexId(1), 10, { purpose: 'batch', expiresAt: 20 }));
      await catalog.upsert(record(hexId(2), 11, { purpose: 'batch' }));
      await catalog.upsert(record(hexId(3), 12));
      const ids = async (q: Partial<Parameters<Catalog['list']>[0]>) =>
        (await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0, ...q })).map((r) => r.id);
      expect(await ids({ purpose: 'batch' })).toEqual([hexId(1), hexId(2)]);
      expect(await ids({ now: 20 })).toEqual([hexId(2), hexId(3)]);
      expect(await ids({ now: 20, purpose: 'batch' })).toEqual([hexId(2)]);
      expect(await ids({ purpose: 'vision' })).toEqual([]);
    });

    it('renders listed rows as JSON.stringify writes them, whatever the values hold', async () => {
      // Every ASCII character alone but NUL (PostgreSQL's text cannot hold it; uploads refuse every
      // control character), then characters JSON or SQL treat specially, then a row with U+0001
      // (PostgreSQL's separator between a row's values) in its id, filename and purpose.
      const names = [
        ...Array.from({ length: 127 }, (_, c) => String.fromCharCode(c + 1)),
        "it's",
        '"\\"',
        'naïve 📄',
        '\u2028\u2029',
        '\ufeffbom',
        '\u007f\u0080',
      ];
      const rows = names.map((filename, i) =>
        record(hexId(i + 1), 100 + (i % 7), {
          filename,
          tenant: i % 5 ? '' : 'team-a',
          purpose: i % 3 ? 'assistants' : 'batch',
          bytes: i % 2 ? 2 ** 40 + i : 0,
          expiresAt: i % 4 ? null : 10_000 + i,
        }),
      );
      rows.push(record('file-\u0001-\u0001', 101, { filename: '\u0001a\u0001', purpose: 'assistants\u0001' }));
      for (const r of rows) await catalog.upsert(r);
      for (const shape of [FILE_OBJECT, HOSTILE_SHAPE])
        for (const tenant of ['', 'team-a'])
          for (const order of ['asc', 'desc'] as const)
            for (const purpose of [undefined, 'batch'])
              for (const after of [undefined, { createdAt: 103, id: hexId(40) }]) {
                const query = { tenant, order, limit: 60, purpose, after, now: 10_050 };
                const listed = await listRecords(catalog, query);
                expect(listed.length).toBeGreaterThan(0);
                if (tenant === '' && order === 'asc' && !purpose && !after)
                  expect(listed.map((r) => r.id)).toContain('file-\u0001-\u0001');
                // Every value as it was stored...
                for (const r of listed) expect(r).toEqual(rows.find((row) => row.id === r.id));
                // ...and every row as JSON.stringify writes the shape's object.
                expect(await catalog.list(query, shape)).toEqual(listed.map((r) => rendered(shape, r)));
              }
    });

    it('returns expired rows oldest expiry first, up to a limit', async () => {
      await catalog.upsert(record(hexId(1), 1, { expiresAt: 30 }));
      await catalog.upsert(record(hexId(2), 1, { expiresAt: 10 }));
      await catalog.upsert(record(hexId(3), 1, { expiresAt: 20 }));
      await catalog.upsert(record(hexId(4), 1));
      expect((await catalog.expired(25, 10)).map((r) => r.id)).toEqual([hexId(2), hexId(3)]);
      expect((await catalog.expired(100, 2)).map((r) => r.id)).toEqual([hexId(2), hexId(3)]);
    });

    describe('uploads', () => {
      it('stores an upload and takes parts only within its declared bytes, its part count and its hour', async () => {
        const u = upload(1, { bytes: 2 ** 33 });
        await catalog.insertUpload(u);
        expect(await catalog.getUpload(u.id)).toEqual(u);
        expect(await catalog.getUpload('upload_missing')).toBeUndefined();
        expect(await catalog.addUploadPart(part(u.id, 1, 2 ** 32), 200, 3)).toBe('added');
        expect(await catalog.addUploadPart(part(u.id, 2, 2 ** 32 + 1), 200, 3)).toBe('over_bytes');
        expect(await catalog.addUploadPart(part(u.id, 3, 2 ** 32 - 1), 200, 3)).toBe('added');
        expect(await catalog.addUploadPart(part(u.id, 4, 0), 200, 2)).toBe('too_many_parts');
        expect(await catalog.addUploadPart(part(u.id, 5, 1), u.expiresAt, 3)).toBe('not_pending');
        expect(await catalog.addUploadPart(part('upload_missing', 6, 1), 200, 3)).toBe('not_pending');
        expect(await catalog.uploadParts(u.id)).toEqual([part(u.id, 1, 2 ** 32), part(u.id, 3, 2 ** 32 - 1)]);
      });

      it("keeps an upload's assembly and its parts' slots, and hands each slot out once", async () => {
        const u = upload(7, { assembly: 'mpu-7' });
        await catalog.insertUpload(u);
        await catalog.insertUpload(upload(8));
        expect(await catalog.getUpload(u.id)).toEqual(u);
        expect((await catalog.getUpload(upload(8).id))?.assembly).toBeUndefined();
        const slots = await Promise.all(Array.from({ length: 20 }, () => catalog.reservePartSlot(u.id)));
        expect([...slots].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
        expect(await catalog.reservePartSlot(upload(8).id)).toBe(0);
        await expect(catalog.reservePartSlot('upload_missing')).rejects.toThrow(/no upload/);
        expect(await catalog.addUploadPart({ ...part(u.id, 1, 6), slot: 3 }, 200, 10)).toBe('added');
        expect(await catalog.addUploadPart(part(u.id, 2, 4), 200, 10)).toBe('added');
        expect(await catalog.uploadParts(u.id)).toEqual([{ ...part(u.id, 1, 6), slot: 3 }, part(u.id, 2, 4)]);
        expect((await catalog.uploadParts(u.id))[1]).not.toHaveProperty('slot');
      });

      it('completes once, writing the file row in the same step', async () => {
        const u = upload(2);
        await catalog.insertUpload(u);
        const file = record(hexId(9), 150, { bytes: 10, purpose: 'batch', expiresAt: 150 + 2_592_000 });
        expect(await catalog.completeUpload(u.id, file)).toBe(true);
        expect(await catalog.getUpload(u.id)).toEqual({ ...u, status: 'completed', fileId: file.id });
        expect(await catalog.get(file.id)).toEqual(file);
        expect(await catalog.completeUpload(u.id, record(hexId(10), 150))).toBe(false);
        expect(await catalog.get(hexId(10))).toBeUndefined();
        expect(await catalog.cancelUpload(u.id)).toBe(false);
        expect(await catalog.addUploadPart(part(u.id, 1, 1), 200, 10)).toBe('not_pending');
      });

      it('cancels only a pending upload, and then neither completes nor takes parts', async () => {
        const u = upload(3);
        await catalog.insertUpload(u);
        expect(await catalog.cancelUpload(u.id)).toBe(true);
        expect(await catalog.cancelUpload(u.id)).toBe(false);
        expect((await catalog.getUpload(u.id))?.status).toBe('cancelled');
        expect(await catalog.completeUpload(u.id, record(hexId(11), 1))).toBe(false);
        expect(await catalog.addUploadPart(part(u.id, 1, 1), 200, 10)).toBe('not_pending');
      });

      it('lists uploads to release until released, marks expired ones, then forgets them', async () => {
        const pending = upload(4, { expiresAt: 3700 });
        const cancelled = upload(5, { expiresAt: 3800 });
        const completed = upload(6, { expiresAt: 3900 });
        for (const u of [pending, cancelled, completed]) await catalog.insertUpload(u);
        await catalog.addUploadPart(part(pending.id, 1, 5), 200, 10);
        await catalog.cancelUpload(cancelled.id);
        await catalog.completeUpload(completed.id, record(hexId(12), 1));
        const ids = async (now: number) => (await catalog.uploadsToRelease(now, 10)).map((u) => u.id);
        expect(await ids(3699)).toEqual([cancelled.id, completed.id]);
        expect(await ids(3700)).toEqual([pending.id, cancelled.id, completed.id]);
        expect((await catalog.uploadsToRelease(3700, 1)).map((u) => u.id)).toEqual([pending.id]);
        for (const u of [pending, cancelled, completed]) await catalog.markUploadReleased(u.id);
        expect(await ids(10_000)).toEqual([]);
        expect(await catalog.uploadParts(pending.id)).toEqual([]);
        expect((await catalog.getUpload(pending.id))?.status).toBe('expired');
        expect((await catalog.getUpload(completed.id))?.status).toBe('completed');
        expect(await catalog.forgetUploads(3800)).toBe(2);
        expect(await catalog.getUpload(cancelled.id)).toBeUndefined();
        expect(await catalog.getUpload(completed.id)).toBeDefined();
      });
    });
  });
}
