/**
 * JSON Schemas of the wire format. Fastify validates requests and serialises responses with them,
 * and the tests check them against openapi/openapi.yaml, so the code and the contract are one source.
 */
import { PURPOSES } from '../files/upload-form.js';
import { LIST_LIMIT_MAX } from '../files/file-service.js';

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

export const sharedSchemas = [errorSchema, fileObjectSchema, fileListSchema, deletedFileSchema];

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
} as const;
