/**
 * Errors as data: every failure the gateway reports is a GatewayError that knows its HTTP status and
 * the OpenAI error envelope fields. Adapters translate driver errors into these at their edge, so
 * routes never inspect an SDK or SQL error.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'not_found_error'
  | 'authentication_error'
  | 'permission_error'
  | 'service_unavailable'
  | 'server_error';

export class GatewayError extends Error {
  /** Response headers that belong to this failure (Content-Range on 416, Retry-After on 503). */
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    super(message, options);
    this.headers = options?.headers ?? {};
    this.name = 'GatewayError';
  }

  toEnvelope(): { error: { message: string; type: string; param: string | null; code: string } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (code: string, message: string, param: string | null = null): GatewayError =>
  new GatewayError(400, 'invalid_request_error', code, message, param);

/** The message always contains "not found": LlamaStack's remote::openai provider matches on it. */
export const fileNotFound = (id: string): GatewayError =>
  new GatewayError(404, 'invalid_request_error', 'file_not_found', `File ${id} not found.`, 'file_id');

/** Upload ids are checked before any lookup, so a malformed one is simply not found. */
export const uploadNotFound = (id: string): GatewayError =>
  new GatewayError(404, 'invalid_request_error', 'upload_not_found', `Upload ${id} not found.`, 'upload_id');

/** A 409, which the SDKs retry: the retry finds the upload completed, or its turn. */
export const uploadBusy = (id: string): GatewayError =>
  new GatewayError(
    409,
    'invalid_request_error',
    'upload_busy',
    `Upload ${id} is being completed or released by another request; try again in a moment.`,
    'upload_id',
    { headers: { 'retry-after': '1' } },
  );

export const fileTooLarge = (limit: number): GatewayError =>
  new GatewayError(
    413,
    'invalid_request_error',
    'file_too_large',
    `File is too large: the limit is ${limit} bytes.`,
    'file',
  );

export const rangeNotSatisfiable = (size: number): GatewayError =>
  new GatewayError(
    416,
    'invalid_request_error',
    'range_not_satisfiable',
    `Range not satisfiable for ${size} bytes.`,
    'range',
    {
      headers: { 'content-range': `bytes */${size}` },
    },
  );

/** A dependency (store or catalog) is down: clients may retry, so this is the one retryable 5xx. */
export const unavailable = (what: string, cause?: unknown): GatewayError =>
  new GatewayError(
    503,
    'service_unavailable',
    'service_unavailable',
    `${what} is unavailable, try again later.`,
    null,
    {
      cause,
      headers: { 'retry-after': '1' },
    },
  );

/** A blob the catalog points at is gone from the store (deleted out of band). */
export class BlobNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`blob ${id} not found`);
    this.name = 'BlobNotFoundError';
  }
}

/** Assembled bytes whose MD5 is not the one the client expected; thrown before they become visible. */
export class ChecksumMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`md5 ${actual} does not match the expected ${expected}`);
    this.name = 'ChecksumMismatchError';
  }
}
