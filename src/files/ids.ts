import { randomBytes } from 'node:crypto';

/**
 * File ids are "file-" + 32 hex digits laid out as a UUIDv7: 48 bits of creation time in
 * milliseconds, then random bits. The hex form matches LlamaStack's ids (file- + uuid hex), and the
 * embedded time lets a list cursor keep its place even when the file it names was deleted between
 * two pages (clients delete while they paginate).
 */
const FILE_ID = /^file-[0-9a-f]{32}$/;
/** Ids we did not mint (a LlamaStack bucket taken over by reindex) are 1..64 hex digits. */
const FOREIGN_FILE_ID = /^file-[0-9a-f]{1,64}$/;

export function newFileId(nowMs: number): string {
  const hex = randomBytes(16).toString('hex').split('');
  const time = nowMs.toString(16).padStart(12, '0');
  for (let i = 0; i < 12; i++) hex[i] = time[i]!;
  hex[12] = '7'; // version
  hex[16] = '89ab'[parseInt(hex[16]!, 16) & 3]!; // RFC 9562 variant
  return `file-${hex.join('')}`;
}

export const isFileId = (id: string): boolean => FOREIGN_FILE_ID.test(id);

/**
 * Creation time (ms) of an id minted by newFileId, or by the S3 store for a file assembled from an
 * upload (version 8, the same layout: storage/s3-assembly.ts), or undefined for any other id.
 */
export function fileIdTimeMs(id: string): number | undefined {
  if (!FILE_ID.test(id) || !'78'.includes(id[17]!) || !'89ab'.includes(id[21]!)) return undefined;
  return parseInt(id.slice(5, 17), 16);
}

/** Upload and part ids as OpenAI spells them (upload_..., part_...): random, nothing to sort on. */
const UPLOAD_ID = /^upload_[0-9a-f]{32}$/;
export const newUploadId = (): string => `upload_${randomBytes(16).toString('hex')}`;
export const newPartId = (): string => `part_${randomBytes(16).toString('hex')}`;
/** Checked before an id reaches the catalog or names a folder in the fs store. */
export const isUploadId = (id: string): boolean => UPLOAD_ID.test(id);
