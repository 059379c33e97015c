import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileRecord } from '../../src/catalog/catalog.js';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { tempDir } from '../helpers/gateway.js';
import { listRecords } from '../helpers/catalog.js';

const record = (n: number): FileRecord => ({
  id: `file-${n.toString(16).padStart(32, '0')}`,
  tenant: '',
  filename: `${n}.txt`,
  purpose: 'assistants',
  bytes: n,
  createdAt: 100 + n,
  expiresAt: null,
});

/** What another process (reindex, check) does: its own connection to the same file. */
const insertElsewhere = (other: Database.Database, r: FileRecord) =>
  other
    .prepare(
      'INSERT INTO files (id, tenant, filename, purpose, bytes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    )
    .run(r.id, r.tenant, r.filename, r.purpose, r.bytes, r.createdAt, r.expiresAt);

// Awaiting a catalog call only runs microtasks: the test stays in one event-loop turn until nextTurn().
describe('the SQLite catalog reads one snapshot per event-loop turn', () => {
  let catalog: SqliteCatalog;
  let other: Database.Database;
  beforeEach(async () => {
    const file = path.join(await tempDir(), 'catalog.sqlite');
    catalog = new SqliteCatalog(file);
    await catalog.init();
    // No busy wait: what the catalog holds must show at once.
    other = new Database(file, { timeout: 0 });
  });
  afterEach(async () => {
    other.close();
    await catalog.close();
  });

  it("sees another process's write from the next turn on, and the same snapshot within a turn", async () => {
    const r = record(1);
    expect(await catalog.get(r.id)).toBeUndefined();
    insertElsewhere(other, r);
    expect(await catalog.get(r.id)).toBeUndefined();
    expect(await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0 })).toEqual([]);
    await nextTurn();
    expect(await catalog.get(r.id)).toEqual(r);
    expect(await listRecords(catalog, { tenant: '', order: 'asc', limit: 10, now: 0 })).toEqual([r]);
  });

  it('sees its own writes at once, even after another process overtook the snapshot', async () => {
    const [mine, theirs] = [record(1), record(2)];
    expect(await catalog.get(mine.id)).toBeUndefined();
    insertElsewhere(other, theirs);
    // Upgrading the stale snapshot to a write would fail (SQLITE_BUSY_SNAPSHOT): the write ends it first.
    await catalog.upsert(mine);
    expect(await catalog.get(mine.id)).toEqual(mine);
    expect(await catalog.get(theirs.id)).toEqual(theirs);
    expect(await catalog.stats()).toEqual({ files: 2, bytes: 3 });
  });

  it('runs the Uploads transactions after a read in the same turn', async () => {
    const upload = {
      id: `upload_${'0'.repeat(31)}1`,
      tenant: '',
      filename: 'big.jsonl',
      purpose: 'batch',
      bytes: 4,
      mimeType: 'application/jsonl',
      createdAt: 100,
      expiresAt: 3700,
      fileTtlSeconds: null,
      status: 'pending' as const,
      fileId: null,
    };
    await catalog.insertUpload(upload);
    expect((await catalog.getUpload(upload.id))?.status).toBe('pending');
    insertElsewhere(other, record(9));
    expect(await catalog.addUploadPart({ id: 'part_1', uploadId: upload.id, bytes: 4, createdAt: 101 }, 200, 10)).toBe(
      'added',
    );
    expect(await catalog.completeUpload(upload.id, record(4))).toBe(true);
    expect((await catalog.getUpload(upload.id))?.status).toBe('completed');
    expect(await catalog.get(record(4).id)).toEqual(record(4));
  });

  it('leaves no transaction open: another process can truncate the WAL after the turn', async () => {
    insertElsewhere(other, record(1));
    expect(await catalog.get(record(1).id)).toEqual(record(1));
    insertElsewhere(other, record(2));
    // The snapshot pins the WAL frames it may read: a truncating checkpoint cannot finish meanwhile.
    expect(other.pragma('wal_checkpoint(TRUNCATE)', { simple: false })).toEqual([
      { busy: 1, log: expect.any(Number), checkpointed: expect.any(Number) },
    ]);
    await nextTurn();
    expect(other.pragma('wal_checkpoint(TRUNCATE)', { simple: false })).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
  });

  it('closes with a snapshot open, and the turn ends without an error', async () => {
    await catalog.get(record(1).id);
    await catalog.close();
    await nextTurn();
    await expect(catalog.get(record(1).id)).rejects.toThrow(/not open/);
  });
});
