/**
 * JSON Schemas of the wire format. Fastify validates requests and serialises responses with them
 * (except list pages, rendered from wire.ts's FILE_OBJECT, which a test holds to FileObject), and
 * the tests check them against openapi/openapi.yaml, so the code and the contract are one source.
 */
import { EXPIRES_AFTER_MAX_SECONDS, EXPIRES_AFTER_MIN_SECONDS, PURPOSES } from '../files/upload-form.js';
import { LIST_LIMIT_MAX } from '../files/file-service.js';
import { MAX_PARTS_PER_UPLOAD } from '../files/upload-service.js';

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'param', 'code'],
      properties: {
        message: { type: 'string' },
        type: { type: 'string' },
        param: { type: ['string', 'null'] },
        code: { type: ['string', 'null'] },
      },
    },
  },
} as const;

export const fileObjectSchema = {
  $id: 'FileObject',
  type: 'object',
  required: ['id', 'object', 'bytes', 'created_at', 'expires_at', 'filename', 'purpose', 'status'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['file'] },
    bytes: { type: 'integer' },
    created_at: { type: 'integer' },
    expires_at: { type: ['integer', 'null'] },
    filename: { type: 'string' },
    purpose: { type: 'string', enum: PURPOSES },
    status: { type: 'string', enum: ['processed'] },
    status_details: { type: 'null' },
  },
} as const;

export const fileListSchema = {
  $id: 'FileList',
  type: 'object',
  required: ['object', 'data', 'first_id', 'last_id', 'has_more'],
  properties: {
    object: { type: 'string', enum: ['list'] },
    data: { type: 'array', items: { $ref: 'FileObject#' } },
    first_id: { type: 'string' },
    last_id: { type: 'string' },
    has_more: { type: 'boolean' },
  },
} as const;

export const deletedFileSchema = {
  $id: 'DeletedFile',
  type: 'object',
  required: ['id', 'object', 'deleted'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['file'] },
    deleted: { type: 'boolean' },
  },
} as const;

export const uploadObjectSchema = {
  $id: 'Upload',
  type: 'object',
  required: ['id', 'object', 'bytes', 'created_at', 'expires_at', 'filename', 'purpose', 'status', 'file'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['upload'] },
    bytes: { type: 'integer' },
    created_at: { type: 'integer' },
    expires_at: { type: 'integer' },
    filename: { type: 'string' },
    purpose: { type: 'string', enum: PURPOSES },
    status: { type: 'string', enum: ['pending', 'completed', 'cancelled', 'expired'] },
    file: { anyOf: [{ $ref: 'FileObject#' }, { type: 'null' }] },
  },
} as const;

export const uploadPartSchema = {
  $id: 'UploadPart',
  type: 'object',
  required: ['id', 'object', 'created_at', 'upload_id'],
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['upload.part'] },
    created_at: { type: 'integer' },
    upload_id: { type: 'string' },
  },
} as const;

/** GET /v1/files-gateway/info. Serialised through this schema, so nothing unlisted (no secret) can slip out. */
export const gatewayInfoSchema = {
  $id: 'GatewayInfo',
  type: 'object',
  required: ['object', 'version', 'store', 's3', 'max_file_bytes', 'caller'],
  properties: {
    object: { type: 'string', enum: ['files_gateway.info'] },
    version: { type: 'string' },
    store: { type: 'string', enum: ['fs', 's3'] },
    s3: {
      anyOf: [
        {
          type: 'object',
          required: ['endpoint', 'bucket', 'region', 'force_path_style', 'tls_verify', 'prefix'],
          properties: {
            endpoint: { type: ['string', 'null'] },
            bucket: { type: 'string' },
            region: { type: 'string' },
            force_path_style: { type: 'boolean' },
            tls_verify: { type: 'boolean' },
            prefix: { type: 'string' },
          },
        },
        { type: 'null' },
      ],
    },
    max_file_bytes: { type: 'integer' },
    caller: {
      type: 'object',
      required: ['tenant', 'service'],
      properties: {
        tenant: { type: 'string' },
        service: { type: 'boolean' },
      },
    },
  },
} as const;

export const sharedSchemas = [
  errorSchema,
  fileObjectSchema,
  fileListSchema,
  deletedFileSchema,
  uploadObjectSchema,
  uploadPartSchema,
  gatewayInfoSchema,
];

/**
 * Bodies list their properties in `propertyNames`: fastify's Ajv removes unknown properties under
 * `additionalProperties: false` instead of refusing them, and OpenAI refuses them.
 */
export const createUploadBodySchema = {
  type: 'object',
  required: ['bytes', 'filename', 'mime_type', 'purpose'],
  propertyNames: { enum: ['bytes', 'filename', 'mime_type', 'purpose', 'expires_after'] },
  properties: {
    bytes: { type: 'integer', minimum: 0 },
    filename: { type: 'string' },
    mime_type: { type: 'string', minLength: 1 },
    purpose: { type: 'string', enum: PURPOSES },
    expires_after: {
      type: 'object',
      required: ['anchor', 'seconds'],
      properties: {
        anchor: { type: 'string', enum: ['created_at'] },
        seconds: { type: 'integer', minimum: EXPIRES_AFTER_MIN_SECONDS, maximum: EXPIRES_AFTER_MAX_SECONDS },
      },
    },
  },
} as const;

export const completeUploadBodySchema = {
  type: 'object',
  required: ['part_ids'],
  propertyNames: { enum: ['part_ids', 'md5'] },
  properties: {
    part_ids: { type: 'array', items: { type: 'string' }, maxItems: MAX_PARTS_PER_UPLOAD },
    md5: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
  },
} as const;

export const uploadIdParamsSchema = {
  type: 'object',
  required: ['upload_id'],
  properties: { upload_id: { type: 'string' } },
} as const;

export const listQuerySchema = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: LIST_LIMIT_MAX },
    order: { type: 'string', enum: ['asc', 'desc'] },
    after: { type: 'string', minLength: 1 },
    purpose: { type: 'string', enum: PURPOSES },
  },
} as const;

export const fileIdParamsSchema = {
  type: 'object',
  required: ['file_id'],
  properties: { file_id: { type: 'string' } },
} as const;

const errorResponses = { '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } };

export const responses = {
  file: { 200: { $ref: 'FileObject#' }, ...errorResponses },
  list: { 200: { $ref: 'FileList#' }, ...errorResponses },
  deleted: { 200: { $ref: 'DeletedFile#' }, ...errorResponses },
  upload: { 200: { $ref: 'Upload#' }, ...errorResponses },
  uploadPart: { 200: { $ref: 'UploadPart#' }, ...errorResponses },
  info: { 200: { $ref: 'GatewayInfo#' }, ...errorResponses },
} as const;
