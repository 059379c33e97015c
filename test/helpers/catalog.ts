import { afterAll, beforeAll } from 'vitest';
import type { Catalog, FileRecord, ListQuery, RecordShape } from '../../src/catalog/catalog.js';
import { FILE_COLUMNS } from '../../src/catalog/rows.js';
import { startPostgres, type PgCluster } from './postgres.js';

/** FileRecord itself as a shape: a page the catalog renders in it parses back into records. */
const RECORD: RecordShape = (Object.keys(FILE_COLUMNS) as (keyof FileRecord)[]).map((field) => [field, { field }]);

/** A catalog's list page as records. */
export async function listRecords(catalog: Catalog, query: ListQuery): Promise<FileRecord[]> {
  return (await catalog.list(query, RECORD)).map((text) => JSON.parse(text) as FileRecord);
}

/**
 * A PostgreSQL cluster for the calling test file: started before its tests, stopped after them.
 * freshDatabase() makes an empty database of its own and returns its URL.
 */
export function postgresForFile(): { cluster(): PgCluster; freshDatabase(): Promise<string> } {
  let cluster: PgCluster | undefined;
  let databases = 0;
  beforeAll(async () => {
    cluster = await startPostgres();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return {
    cluster: () => cluster!,
    freshDatabase: () => cluster!.createDatabase(`db_${++databases}`),
  };
}
