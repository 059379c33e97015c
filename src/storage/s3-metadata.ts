/**
 * The S3 metadata codec: how a blob's rebuild metadata (its catalog row: tenant, filename, purpose,
 * created_at, expires_at; bytes is the object's size) is written onto its object and read back by
 * list(), and so by reindex.
 */
import type { Tag } from '@aws-sdk/client-s3';
import type { BlobMeta } from './blob-store.js';

/*
 * Rebuild metadata (invariant 3) travels with the object in one of two forms:
 *
 * - user metadata (x-amz-meta-*), set by put() when the metadata is known up front, or known by
 *   the end of a body that fits in one PutObject (up to one part). Headers are
 *   ASCII and S3 allows 2 KB of user metadata in total, so the filename is base64url (a 1024-byte
 *   UTF-8 name becomes 1366 characters, well inside the limit even for all-emoji names, where
 *   percent-encoding would triple it).
 * - object tags, set by putMeta() when the metadata arrives after a larger body's multipart upload
 *   began (the openai SDK sends the file part before `purpose`). Tagging needs no copy of the object, but S3 allows 10 tags,
 *   values of at most 256 characters from [A-Za-z0-9 +-=._:/@]. So the base64url filename is split
 *   over filename-b64-0, filename-b64-1, ... (6 tags for 1024 bytes) next to purpose, created-at
 *   and expires-at: at most 9 tags.
 *
 * Same keys in both forms; expires-at is absent when the file never expires; bytes is the object's
 * size. Tags win when both exist, because putMeta is always the later write (S3BlobStore reads them
 * first).
 */
const K = {
  filename: 'filename-b64',
  purpose: 'purpose',
  createdAt: 'created-at',
  expiresAt: 'expires-at',
  tenant: 'tenant',
} as const;
const MAX_TAGS = 10;
const MAX_TAG_VALUE = 256;
const MAX_USER_METADATA = 2048;
/** OpenAI's purposes are plain words; anything else would not survive as a header or tag value. */
const SAFE_VALUE = /^[A-Za-z0-9 +\-=._:/@]{1,256}$/;

function metaFields(meta: BlobMeta): Record<string, string> {
  if (!SAFE_VALUE.test(meta.purpose)) throw new Error(`purpose "${meta.purpose}" cannot be stored as S3 metadata`);
  const fields: Record<string, string> = {
    [K.filename]: Buffer.from(meta.filename, 'utf8').toString('base64url'),
    [K.purpose]: meta.purpose,
    [K.createdAt]: String(meta.createdAt),
  };
  if (meta.expiresAt !== null) fields[K.expiresAt] = String(meta.expiresAt);
  // Only a named tenant takes a field (config.ts keeps names to safe characters): the default
  // tenant's objects stay within nine tags even with a 1024-byte filename.
  if (meta.tenant !== '') fields[K.tenant] = meta.tenant;
  return fields;
}

/** The object's user metadata (x-amz-meta-*, keys without the prefix); throws past S3's 2 KB. */
export function toUserMetadata(meta: BlobMeta): Record<string, string> {
  const fields = metaFields(meta);
  const size = Object.entries(fields).reduce((n, [k, v]) => n + k.length + v.length, 0);
  if (size > MAX_USER_METADATA)
    throw new Error(`metadata of ${size} bytes exceeds S3's ${MAX_USER_METADATA}-byte limit`);
  return fields;
}

/** The object's tag set; throws past S3's 10 tags. */
export function toTags(meta: BlobMeta): Tag[] {
  const { [K.filename]: filename = '', ...rest } = metaFields(meta);
  const tags: Tag[] = Object.entries(rest).map(([Key, Value]) => ({ Key, Value }));
  // an empty filename still gets its one (empty) chunk, so the form is recognisable
  for (let i = 0; i === 0 || i * MAX_TAG_VALUE < filename.length; i++) {
    tags.push({ Key: `${K.filename}-${i}`, Value: filename.slice(i * MAX_TAG_VALUE, (i + 1) * MAX_TAG_VALUE) });
  }
  if (tags.length > MAX_TAGS) throw new Error(`metadata needs ${tags.length} tags, S3 allows ${MAX_TAGS}`);
  return tags;
}

/** The metadata a tag set carries, if it is ours; `bytes` is the object's size. */
export function fromTags(tags: Tag[], bytes: number): BlobMeta | undefined {
  const map = new Map(tags.map((t) => [t.Key ?? '', t.Value ?? '']));
  let filename = '';
  for (let i = 0; map.has(`${K.filename}-${i}`); i++) filename += map.get(`${K.filename}-${i}`);
  if (!map.has(`${K.filename}-0`)) return undefined;
  return parseFields({ ...Object.fromEntries(map), [K.filename]: filename }, bytes);
}

/** The metadata user metadata carries, if it is ours; `bytes` is the object's size. */
export function fromUserMetadata(metadata: Record<string, string | undefined>, bytes: number): BlobMeta | undefined {
  return parseFields(metadata, bytes);
}

/** Undefined when the fields are absent or not ours, so list() skips the object. */
function parseFields(fields: Record<string, string | undefined>, bytes: number): BlobMeta | undefined {
  const filename = fields[K.filename];
  const purpose = fields[K.purpose];
  const createdAt = Number(fields[K.createdAt]);
  const expiresRaw = fields[K.expiresAt];
  const expiresAt = expiresRaw === undefined ? null : Number(expiresRaw);
  if (filename === undefined || !purpose || !Number.isSafeInteger(createdAt)) return undefined;
  if (expiresAt !== null && !Number.isSafeInteger(expiresAt)) return undefined;
  const tenant = fields[K.tenant] ?? '';
  return {
    tenant,
    filename: Buffer.from(filename, 'base64url').toString('utf8'),
    purpose,
    createdAt,
    expiresAt,
    bytes,
  };
}
