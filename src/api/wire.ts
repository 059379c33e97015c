import type { FileRecord, RecordShape, UploadPartRecord } from '../catalog/catalog.js';
import type { RenderedPage } from '../files/file-service.js';
import type { UploadView } from '../files/upload-service.js';

/** Domain records to the OpenAI wire format. */
export const toFileObject = (f: FileRecord) => ({
  id: f.id,
  object: 'file' as const,
  bytes: f.bytes,
  created_at: f.createdAt,
  expires_at: f.expiresAt,
  filename: f.filename,
  purpose: f.purpose,
  status: 'processed' as const,
  status_details: null,
});

/**
 * toFileObject as data, for the catalog to render list pages (Catalog.list). Kept apart because an
 * object literal is what V8 builds and fast-json-stringify serialises fastest for the retrieve and
 * upload answers; the list tests hold the two to the same bytes.
 */
export const FILE_OBJECT: RecordShape = [
  ['id', { field: 'id' }],
  ['object', { constant: 'file' }],
  ['bytes', { field: 'bytes' }],
  ['created_at', { field: 'createdAt' }],
  ['expires_at', { field: 'expiresAt' }],
  ['filename', { field: 'filename' }],
  ['purpose', { field: 'purpose' }],
  ['status', { constant: 'processed' }],
  ['status_details', { constant: null }],
];

/**
 * The FileList's JSON text, around files that are already JSON of FILE_OBJECT. first_id/last_id
 * are "" on an empty page, as LlamaStack and the OpenAI spec (type string) have it.
 */
export const fileListJson = (page: RenderedPage): string =>
  `{"object":"list","data":[${page.json.join(',')}],"first_id":${JSON.stringify(page.firstId ?? '')},` +
  `"last_id":${JSON.stringify(page.lastId ?? '')},"has_more":${page.hasMore}}`;

export const toUploadObject = ({ upload, file }: UploadView) => ({
  id: upload.id,
  object: 'upload' as const,
  bytes: upload.bytes,
  created_at: upload.createdAt,
  expires_at: upload.expiresAt,
  filename: upload.filename,
  purpose: upload.purpose,
  status: upload.status,
  file: file && toFileObject(file),
});

export const toUploadPart = (part: UploadPartRecord) => ({
  id: part.id,
  object: 'upload.part' as const,
  created_at: part.createdAt,
  upload_id: part.uploadId,
});
