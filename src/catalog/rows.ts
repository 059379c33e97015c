/**
 * Catalog rows as both SQL catalogs store them (snake_case columns, Unix seconds), and their
 * mapping to and from the port's records.
 */
import type { FileRecord, ListQuery, RecordShape, UploadPartRecord, UploadRecord, UploadStatus } from './catalog.js';

export interface Row {
  id: string;
  tenant: string;
  filename: string;
  purpose: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
}

/** The files table's column for each FileRecord field, in the table's order. */
export const FILE_COLUMNS: Record<keyof FileRecord, keyof Row> = {
  id: 'id',
  tenant: 'tenant',
  filename: 'filename',
  purpose: 'purpose',
  bytes: 'bytes',
  createdAt: 'created_at',
  expiresAt: 'expires_at',
};
/** Every column of the files table, in its order, for SELECT and INSERT lists. */
export const FILE_COLS = Object.values(FILE_COLUMNS).join(', ');

/** Names one of the eight list statements: its order, and whether it filters by purpose and starts after a cursor. */
export const statementKey = (order: 'asc' | 'desc', purpose: boolean, after: boolean) => `${order}:${purpose}:${after}`;
/** The list statement a query runs. */
export const pageKey = (q: ListQuery) => statementKey(q.order, q.purpose !== undefined, q.after !== undefined);

/**
 * A shape as a catalog renders it: the JSON text around each field's value, that is the keys and
 * constants as JSON.stringify writes them (texts[i] before fields[i], one more text after the last).
 */
export interface ShapeTemplate {
  texts: string[];
  fields: (keyof FileRecord)[];
}

export function shapeTemplate(shape: RecordShape): ShapeTemplate {
  const template: ShapeTemplate = { texts: [], fields: [] };
  let text = '{';
  for (const [i, [key, source]] of shape.entries()) {
    text += `${i ? ',' : ''}${JSON.stringify(key)}:`;
    if ('constant' in source) {
      text += JSON.stringify(source.constant);
      continue;
    }
    template.texts.push(text);
    template.fields.push(source.field);
    text = '';
  }
  template.texts.push(`${text}}`);
  return template;
}

export const toRow = (f: FileRecord): Row => ({
  id: f.id,
  tenant: f.tenant,
  filename: f.filename,
  purpose: f.purpose,
  bytes: f.bytes,
  created_at: f.createdAt,
  expires_at: f.expiresAt,
});

export const toRecord = (r: Row): FileRecord => ({
  id: r.id,
  tenant: r.tenant,
  filename: r.filename,
  purpose: r.purpose,
  bytes: r.bytes,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
});

export interface UploadRow {
  id: string;
  tenant: string;
  filename: string;
  purpose: string;
  bytes: number;
  mime_type: string;
  created_at: number;
  expires_at: number;
  file_ttl_seconds: number | null;
  status: UploadStatus;
  file_id: string | null;
  assembly: string | null;
}

export const toUpload = (r: UploadRow): UploadRecord => ({
  id: r.id,
  tenant: r.tenant,
  filename: r.filename,
  purpose: r.purpose,
  bytes: r.bytes,
  mimeType: r.mime_type,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  fileTtlSeconds: r.file_ttl_seconds,
  status: r.status,
  fileId: r.file_id,
  ...(r.assembly !== null && { assembly: r.assembly }),
});

export interface PartRow {
  id: string;
  upload_id: string;
  bytes: number;
  created_at: number;
  slot: number | null;
}

export const toPart = (r: PartRow): UploadPartRecord => ({
  id: r.id,
  uploadId: r.upload_id,
  bytes: r.bytes,
  createdAt: r.created_at,
  ...(r.slot !== null && { slot: r.slot }),
});
