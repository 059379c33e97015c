import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesUnder, startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';

describe('the SQLite catalog locked by someone else', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('answers writes with a retryable 503, keeps no bytes, serves reads, and recovers when the lock goes', {
    timeout: 60_000,
  }, async () => {
    const kept = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('before the lock')])).json();
    const other = new Database(path.join(gw.dataDir, 'catalog.sqlite'));
    other.exec('BEGIN EXCLUSIVE');
    try {
      // The gateway waits out its busy timeout (5 s), then gives up on the row and removes the bytes.
      const refused = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('during the lock')]);
      expect(refused.status).toBe(503);
      expect(refused.json().error.type).toBe('service_unavailable');
      expect(refused.headers['retry-after']).toBeDefined();
      // WAL: readers are not blocked by a writer.
      expect((await request(`${gw.url}/v1/files/${kept.id}/content`)).body.toString()).toBe('before the lock');
    } finally {
      other.exec('COMMIT');
      other.close();
    }
    expect((await filesUnder(path.join(gw.dataDir, 'files'))).filter((f) => !f.includes(kept.id))).toEqual([]);
    expect((await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('after the lock')])).status).toBe(
      200,
    );
  });
});
