/**
 * Rows as release 0.1.0 wrote them, for the tests that upgrade its databases: the files, uploads and
 * parts to insert (with that release's columns), and what a catalog opened on them must then answer.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import type { Catalog, FileRecord, UploadPartRecord, UploadRecord } from '../../src/catalog/catalog.js';
import { listRecords } from '../helpers/catalog.js';

/** The DDL release 0.1.0 ran on an empty database, from fixtures/. */
export const previousReleaseDdl = (catalog: 'sqlite' | 'postgres'): string =>
  readFileSync(new URL(`./fixtures/${catalog}-v0.1.0.sql`, import.meta.url), 'utf8');

const fileId = (n: number) => `file-${n.toString(16).padStart(32, '0')}`;
const uploadId = (n: number) => `upload_${n.toString(16).padStart(32, '0')}`;

/** "now" for the checks: file 4 has expired by then, file 2 has not. */
export const NOW = 1_750_000_500;

export const FILES: FileRecord[] = [
  {
    id: fileId(1),
    tenant: '',
    filename: 'notes.txt',
    purpose: 'assistants',
    bytes: 11,
    createdAt: 1_750_000_000,
    expiresAt: null,
  },
  {
    id: fileId(2),
    tenant: '',
    filename: 'naïve 報告 📄 "q".jsonl',
    purpose: 'batch',
    bytes: 2 ** 40,
    createdAt: 1_750_000_000,
    expiresAt: 1_750_086_400,
  },
  {
    id: fileId(3),
    tenant: 'team-a',
    filename: 'theirs.pdf',
    purpose: 'assistants',
    bytes: 3,
    createdAt: 1_750_000_001,
    expiresAt: null,
  },
  {
    id: fileId(4),
    tenant: '',
    filename: 'gone.txt',
    purpose: 'assistants',
    bytes: 4,
    createdAt: 1_750_000_002,
    expiresAt: 1_750_000_100,
  },
  // The file of the completed upload below.
  {
    id: fileId(5),
    tenant: '',
    filename: 'big.jsonl',
    purpose: 'batch',
    bytes: 10,
    createdAt: 1_750_000_003,
    expiresAt: null,
  },
];

const upload = (n: number, extra: Partial<UploadRecord>): UploadRecord => ({
  id: uploadId(n),
  tenant: '',
  filename: 'big 📦.jsonl',
  purpose: 'batch',
  bytes: 10,
  mimeType: 'application/jsonl',
  createdAt: 1_750_000_000,
  expiresAt: 1_750_003_600,
  fileTtlSeconds: null,
  status: 'pending',
  fileId: null,
  ...extra,
});

export const UPLOADS: UploadRecord[] = [
  upload(1, { fileTtlSeconds: 2_592_000 }),
  upload(2, { status: 'completed', fileId: fileId(5) }),
  upload(3, { tenant: 'team-a', status: 'cancelled', expiresAt: 1_750_000_200 }),
];
/** Uploads whose parts the store has let go of (the `released` column). */
export const RELEASED = new Set([uploadId(3)]);

export const PARTS: UploadPartRecord[] = [
  { id: 'part_1', uploadId: uploadId(1), bytes: 4, createdAt: 1_750_000_010 },
  { id: 'part_2', uploadId: uploadId(1), bytes: 3, createdAt: 1_750_000_011 },
];

/** The INSERTs of the rows above, in the columns release 0.1.0 had; placeholders `?` for SQLite, `$n` for PostgreSQL. */
export function previousReleaseInserts(placeholder: (n: number) => string): { sql: string; values: unknown[] }[] {
  const insert = (table: string, row: Record<string, unknown>) => {
    const columns = Object.keys(row);
    return {
      sql: `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map((_, i) => placeholder(i + 1)).join(', ')})`,
      values: Object.values(row),
    };
  };
  return [
    ...FILES.map((f) =>
      insert('files', {
        id: f.id,
        tenant: f.tenant,
        filename: f.filename,
        purpose: f.purpose,
        bytes: f.bytes,
        created_at: f.createdAt,
        expires_at: f.expiresAt,
      }),
    ),
    ...UPLOADS.map((u) =>
      insert('uploads', {
        id: u.id,
        tenant: u.tenant,
        filename: u.filename,
        purpose: u.purpose,
        bytes: u.bytes,
        mime_type: u.mimeType,
        created_at: u.createdAt,
        expires_at: u.expiresAt,
        file_ttl_seconds: u.fileTtlSeconds,
        status: u.status,
        file_id: u.fileId,
        released: RELEASED.has(u.id),
      }),
    ),
    ...PARTS.map((p) =>
      insert('upload_parts', { id: p.id, upload_id: p.uploadId, bytes: p.bytes, created_at: p.createdAt }),
    ),
  ];
}

const ids = (records: { id: string }[]) => records.map((r) => r.id);

/** What a catalog opened on the rows above answers: every row as it was, lists, totals, uploads, and new writes. */
export async function expectPreviousReleaseRows(catalog: Catalog): Promise<void> {
  for (const f of FILES) expect(await catalog.get(f.id)).toEqual(f);
  expect(await catalog.stats()).toEqual({ files: FILES.length, bytes: FILES.reduce((n, f) => n + f.bytes, 0) });

  const mine = FILES.filter((f) => f.tenant === '');
  const live = mine.filter((f) => f.expiresAt === null || f.expiresAt > NOW);
  expect(ids(await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0 }))).toEqual(ids(mine));
  expect(await listRecords(catalog, { tenant: '', order: 'desc', limit: 10, now: NOW })).toEqual([...live].reverse());
  expect(ids(await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: NOW, purpose: 'batch' }))).toEqual([
    FILES[1]!.id,
    FILES[4]!.id,
  ]);
  expect(
    ids(
      await listRecords(catalog, {
        tenant: '',
        order: 'asc',
        limit: 10,
        now: NOW,
        after: { createdAt: 0, id: FILES[1]!.id },
      }),
    ),
  ).toEqual([FILES[4]!.id]);
  expect(await listRecords(catalog, { tenant: 'team-a', order: 'asc', limit: 10, now: NOW })).toEqual([FILES[2]]);
  expect(await catalog.expired(NOW, 10)).toEqual([FILES[3]]);

  for (const u of UPLOADS) expect(await catalog.getUpload(u.id)).toEqual(u);
  expect(await catalog.uploadParts(UPLOADS[0]!.id)).toEqual(PARTS);
  // Released uploads are not released again; completed ones are due.
  expect(ids(await catalog.uploadsToRelease(NOW, 10))).toEqual([UPLOADS[1]!.id]);

  // And it goes on writing: a part within the declared bytes, the completion, a new file, a delete.
  const pending = UPLOADS[0]!;
  expect(await catalog.addUploadPart({ id: 'part_3', uploadId: pending.id, bytes: 4, createdAt: NOW }, NOW, 100)).toBe(
    'over_bytes',
  );
  expect(await catalog.addUploadPart({ id: 'part_3', uploadId: pending.id, bytes: 3, createdAt: NOW }, NOW, 100)).toBe(
    'added',
  );
  const completed: FileRecord = {
    id: fileId(6),
    tenant: '',
    filename: pending.filename,
    purpose: 'batch',
    bytes: 10,
    createdAt: NOW,
    expiresAt: null,
  };
  expect(await catalog.completeUpload(pending.id, completed)).toBe(true);
  await catalog.upsert({ ...FILES[0]!, id: fileId(7) });
  expect(await catalog.delete(FILES[3]!.id)).toBe(true);
  expect(await catalog.stats()).toEqual({
    files: FILES.length + 1,
    bytes: FILES.reduce((n, f) => n + f.bytes, 0) + 10 + FILES[0]!.bytes - FILES[3]!.bytes,
  });
  expect(await catalog.get(completed.id)).toEqual(completed);
}
