import type { ByteLimit } from './byte-limit.js';
import { badRequest } from '../errors.js';

/** A multipart form as the domain sees it: fields and file parts in the order the client sent them. */
export type FormPart =
  | { kind: 'field'; name: string; value: string }
  | { kind: 'file'; name: string; filename: string | undefined; stream: ByteLimit };

export const PURPOSES = ['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals'] as const;
export type Purpose = (typeof PURPOSES)[number];

export const EXPIRES_AFTER_MIN_SECONDS = 3600;
export const EXPIRES_AFTER_MAX_SECONDS = 2_592_000;
/** OpenAI's default policy: batch files expire after 30 days, others persist until deleted. */
const BATCH_DEFAULT_TTL_SECONDS = 2_592_000;
export const MAX_FILENAME_BYTES = 1024;
const DEFAULT_FILENAME = 'uploaded_file';

const FIELDS = ['purpose', 'expires_after', 'expires_after[anchor]', 'expires_after[seconds]'] as const;
type FieldName = (typeof FIELDS)[number];

export function parsePurpose(value: string, param = 'purpose'): Purpose {
  if (!(PURPOSES as readonly string[]).includes(value)) {
    throw badRequest('invalid_purpose', `'${value}' is not one of ${JSON.stringify(PURPOSES)} - '${param}'`, param);
  }
  return value as Purpose;
}

export function parseExpiresAfterSeconds(anchor: unknown, seconds: unknown): number {
  if (anchor !== 'created_at') {
    throw badRequest(
      'invalid_expires_after',
      `expires_after[anchor] must be 'created_at', got ${JSON.stringify(anchor)}`,
      'expires_after.anchor',
    );
  }
  const n = typeof seconds === 'string' && /^\d+$/.test(seconds.trim()) ? Number(seconds) : seconds;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < EXPIRES_AFTER_MIN_SECONDS || n > EXPIRES_AFTER_MAX_SECONDS) {
    throw badRequest(
      'invalid_expires_after',
      `expires_after[seconds] must be an integer from ${EXPIRES_AFTER_MIN_SECONDS} to ${EXPIRES_AFTER_MAX_SECONDS}, got ${JSON.stringify(seconds)}`,
      'expires_after.seconds',
    );
  }
  return n;
}

/** A file's time to live: what the client asked for, else OpenAI's default for its purpose. */
export const fileTtlSeconds = (purpose: Purpose, requested: number | undefined): number | null =>
  requested ?? (purpose === 'batch' ? BATCH_DEFAULT_TTL_SECONDS : null);

/**
 * The client's filename, kept as sent (UTF-8) so it round-trips; what could break a header or a
 * log line, or could not round-trip, is refused here (checkFilename), and Content-Disposition
 * encoding happens at the HTTP edge. The multipart parser has already decoded the filename's bytes
 * as UTF-8, each undecodable sequence as U+FFFD, which checkFilename refuses.
 */
export function parseFilename(sent: string | undefined): string {
  if (sent === undefined || sent === '') return DEFAULT_FILENAME;
  // Clients follow the WHATWG form encoding, which escapes only these three in a quoted filename.
  return checkFilename(
    sent.replace(/%(22|0D|0A)/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'file',
  );
}

/**
 * A lone UTF-16 surrogate (possible in JSON: `"\ud800"`) has no UTF-8 form: stored, it would come
 * back as U+FFFD. U+FFFD itself is what undecodable bytes in a multipart filename become. In Unicode
 * mode, `\p{Cs}` matches only surrogates that are not part of a pair.
 */
const NOT_ROUND_TRIPPABLE = /[\p{Cs}\uFFFD]/u;

/**
 * The one filename rule of the Files and Uploads APIs: refuses a filename that could break a header
 * or a log line, or that is not well-formed Unicode (so every answer returns exactly the string
 * that was accepted); `param` names where it came from.
 */
export function checkFilename(raw: string, param: string): string {
  if (NOT_ROUND_TRIPPABLE.test(raw)) {
    throw badRequest(
      'invalid_filename',
      'The filename is not well-formed UTF-8 or UTF-16: it has an undecodable byte sequence, a lone surrogate or U+FFFD.',
      param,
    );
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this check refuses
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    throw badRequest('invalid_filename', 'The filename contains control characters.', param);
  }
  if (Buffer.byteLength(raw) > MAX_FILENAME_BYTES) {
    throw badRequest('invalid_filename', `The filename is longer than ${MAX_FILENAME_BYTES} bytes.`, param);
  }
  return raw;
}

/**
 * Collects the non-file fields of an upload in any order, validating each as it arrives so that a
 * bad `purpose` sent before the file stops the upload before any byte is stored.
 */
export class UploadFields {
  private readonly values = new Map<FieldName, string>();

  add(name: string, value: string): void {
    if (!(FIELDS as readonly string[]).includes(name)) {
      throw badRequest('unexpected_field', `Additional properties are not allowed ('${name}' was unexpected)`, name);
    }
    const field = name as FieldName;
    if (this.values.has(field))
      throw badRequest('duplicate_field', `The field '${name}' was sent more than once.`, name);
    this.values.set(field, value);
    if (field === 'purpose') parsePurpose(value);
    if (field === 'expires_after') this.expiresAfterFromJson(value);
    if (
      this.values.has('expires_after') &&
      (this.values.has('expires_after[anchor]') || this.values.has('expires_after[seconds]'))
    ) {
      throw badRequest(
        'invalid_expires_after',
        'Send expires_after either as JSON or as expires_after[anchor] and expires_after[seconds], not both.',
        'expires_after',
      );
    }
  }

  /** True once `purpose` is known: the metadata can travel with the bytes. */
  get purposeKnown(): boolean {
    return this.values.has('purpose');
  }

  /** Purpose and time to live, once the whole form has been read. */
  finish(): { purpose: Purpose; ttlSeconds: number | null } {
    const purposeRaw = this.values.get('purpose');
    if (purposeRaw === undefined) throw badRequest('missing_field', "'purpose' is a required property", 'purpose');
    const purpose = parsePurpose(purposeRaw);
    return { purpose, ttlSeconds: fileTtlSeconds(purpose, this.ttlSeconds()) };
  }

  private ttlSeconds(): number | undefined {
    const json = this.values.get('expires_after');
    if (json !== undefined) return this.expiresAfterFromJson(json);
    const anchor = this.values.get('expires_after[anchor]');
    const seconds = this.values.get('expires_after[seconds]');
    if (anchor === undefined && seconds === undefined) return undefined;
    if (anchor === undefined || seconds === undefined) {
      throw badRequest('invalid_expires_after', 'expires_after needs both [anchor] and [seconds].', 'expires_after');
    }
    return parseExpiresAfterSeconds(anchor, seconds);
  }

  private expiresAfterFromJson(json: string): number {
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw badRequest(
        'invalid_expires_after',
        'expires_after must be a JSON object like {"anchor":"created_at","seconds":3600}.',
        'expires_after',
      );
    }
    const obj = (parsed ?? {}) as { anchor?: unknown; seconds?: unknown };
    return parseExpiresAfterSeconds(obj.anchor, obj.seconds);
  }
}
