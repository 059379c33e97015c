import type { Catalog, FileRecord, ListQuery, RecordShape } from '../../src/catalog/catalog.js';
import { FILE_COLUMNS } from '../../src/catalog/rows.js';

/** FileRecord itself as a shape: a page the catalog renders in it parses back into records. */
const RECORD: RecordShape = (Object.keys(FILE_COLUMNS) as (keyof FileRecord)[]).map((field) => [field, { field }]);

/** A catalog's list page as records. */
export async function listRecords(catalog: Catalog, query: ListQuery): Promise<FileRecord[]> {
  return (await catalog.list(query, RECORD)).map((text) => JSON.parse(text) as FileRecord);
}
