/**
 * How the S3 store sends an upload's parts straight into the file they become (PartAssembly): the
 * names and numbers, kept apart from the S3 calls.
 *
 * The file's key must be known when the first part arrives, but its id is made at complete, with
 * the creation time in it (list cursors place deleted files by it). So an assembled file's id is a
 * UUIDv8 laid out like the gateway's v7 ids (48 bits of milliseconds first) whose other 74 bits
 * come from the upload's id, and its key is made of those bits alone: `assembled/<20 hex digits>`.
 * Reindex rebuilds the id from that key and the created-at the object carries. No id the gateway
 * mints otherwise has this layout (they are UUIDv7), nor does LlamaStack's (UUIDv4); an object of
 * another origin whose key does is not taken for a file, as it could not be served.
 *
 * Part numbers: every part of the upload takes a slot, a stretch of `block` numbers from
 * slot x block + 1, enough for the largest part the gateway takes in S3 parts of the store's part
 * size. Number 10,000, the last S3 allows, is kept for a last part stored on its own, copied in at
 * complete. With 8 MiB parts and 64 MiB API parts a slot is 8 numbers: 1,249 slots, 78 GiB.
 */
import type { PartRef } from './blob-store.js';
import { S3_LIMITS, S3_MAX_PARTS } from './part-assembly.js';

export const ASSEMBLED_DIR = 'assembled/';
const TAIL = '8[0-9a-f]{3}[89ab][0-9a-f]{15}';
export const ASSEMBLED_KEY = new RegExp(`^${ASSEMBLED_DIR}(${TAIL})$`);
const ASSEMBLED_FILE_ID = new RegExp(`^file-[0-9a-f]{12}(${TAIL})$`);
const UPLOAD_ID = /^upload_([0-9a-f]{32})$/;

/** The number a part stored on its own takes when it is copied in last. */
export const LAST_PART_NUMBER = S3_MAX_PARTS;

/** The 80 bits after the time of the upload's file id: version 8, 74 bits of the upload id, the RFC 9562 variant. */
export function assemblyTail(uploadId: string): string {
  const hex = UPLOAD_ID.exec(uploadId)?.[1];
  if (hex === undefined) throw new Error(`not an upload id: ${uploadId}`);
  return `8${hex.slice(0, 3)}${'89ab'[parseInt(hex[3]!, 16) & 3]}${hex.slice(4, 19)}`;
}

export const assembledKey = (tail: string): string => ASSEMBLED_DIR + tail;

export const assembledFileId = (tail: string, createdAt: number): string =>
  `file-${(createdAt * 1000).toString(16).padStart(12, '0')}${tail}`;

/** The tail of an assembled file's id, or undefined for any other id. */
export const tailOf = (fileId: string): string | undefined => ASSEMBLED_FILE_ID.exec(fileId)?.[1];

/** The handle kept with the upload: the slot size travels with it, so every replica numbers parts alike. */
export interface AssemblyHandle {
  block: number;
  multipartId: string;
}

export const formatHandle = (h: AssemblyHandle): string => `${h.block}/${h.multipartId}`;

export function parseHandle(handle: string): AssemblyHandle {
  const slash = handle.indexOf('/');
  const block = Number(handle.slice(0, slash));
  if (slash < 1 || !Number.isInteger(block) || block < 1) throw new Error(`not an assembly handle: ${handle}`);
  return { block, multipartId: handle.slice(slash + 1) };
}

/** Numbers per slot: a body of up to maxPartBytes goes out in at most this many parts of partSize. */
export const blockFor = (maxPartBytes: number, partSize: number): number =>
  Math.max(1, Math.ceil(maxPartBytes / partSize));

/** Slots there are, leaving LAST_PART_NUMBER free. */
export const slotCount = (block: number): number => Math.floor((LAST_PART_NUMBER - 1) / block);

export const firstPartNumber = (slot: number, block: number): number => slot * block + 1;

/**
 * Whether the multipart upload can become the file as it is: the parts listed in slot order, each
 * in a slot but a last one stored on its own (copied in as LAST_PART_NUMBER). Parts in slots are
 * at least S3's 5 MiB (putPartInto stores shorter ones on their own), so any of them may be last.
 */
export function completesAsItIs(parts: readonly PartRef[]): boolean {
  let previous = -1;
  for (const [i, part] of parts.entries()) {
    if (part.slot === undefined) {
      if (i < parts.length - 1 || part.bytes > S3_LIMITS.maxPart) return false;
    } else if (part.slot <= previous) return false;
    else previous = part.slot;
  }
  return previous >= 0;
}
