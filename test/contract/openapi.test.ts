import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deletedFileSchema,
  errorSchema,
  fileIdParamsSchema,
  fileListSchema,
  fileObjectSchema,
  gatewayInfoSchema,
  listQuerySchema,
  sharedSchemas,
} from '../../src/api/schemas.js';
import { LIST_LIMIT_MAX } from '../../src/files/file-service.js';
import { EXPIRES_AFTER_MAX_SECONDS, EXPIRES_AFTER_MIN_SECONDS, PURPOSES } from '../../src/files/upload-form.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { assertDocumentedResponse, openapi } from '../helpers/openapi.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('openapi/openapi.yaml', () => {
  it('passes redocly lint without errors', async () => {
    const redocly = fileURLToPath(new URL('../../node_modules/.bin/redocly', import.meta.url));
    const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
    const run = await promisify(execFile)(redocly, ['lint', 'openapi/openapi.yaml'], { cwd: ROOT, env }).catch(
      (err: { code?: number; stdout?: string; stderr?: string }) => err,
    );
    // redocly exits non-zero on any error-level problem and prints each one.
    expect('code' in run ? run.code : 0, `${run.stdout}\n${run.stderr}`).toBe(0);
  }, 60_000);
});

type Schema = Record<string, unknown>;
// Keywords that explain rather than constrain: the document may have more of them than the code.
const ANNOTATIONS = new Set(['$id', 'title', 'description', 'examples', 'default', 'deprecated']);
// Keywords whose value is a set: their order says nothing.
const SETS = new Set(['required', 'enum', 'type']);

/** A schema with its refs inlined, annotations dropped and sets sorted, so equal constraints compare equal. */
function normalise(schema: unknown, deref: (ref: string) => unknown): unknown {
  if (Array.isArray(schema)) return schema.map((s) => normalise(s, deref));
  if (typeof schema !== 'object' || schema === null) return schema;
  const s = schema as Schema;
  if (typeof s.$ref === 'string') return normalise(deref(s.$ref), deref);
  const out: Schema = {};
  for (const [key, value] of Object.entries(s)) {
    if (ANNOTATIONS.has(key)) continue;
    if (SETS.has(key) && Array.isArray(value)) out[key] = [...value].sort();
    else if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as Schema).map(([name, p]) => [name, normalise(p, deref)]));
    } else out[key] = normalise(value, deref);
  }
  return out;
}

const codeSide = (schema: unknown) =>
  normalise(
    schema,
    (ref) => sharedSchemas.find((s) => `${s.$id}#` === ref) ?? expect.fail(`schemas.ts: no schema ${ref}`),
  );

function pointer(ref: string): unknown {
  let value: unknown = openapi;
  for (const part of ref.replace(/^#\//, '').split('/'))
    value = (value as Schema | undefined)?.[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  return value ?? expect.fail(`openapi.yaml: nothing at ${ref}`);
}
const docSide = (schema: unknown) => normalise(schema, pointer);

/** The parameters of an operation as the one object schema fastify validates them with. */
function parametersSchema(params: unknown[], where: 'query' | 'path'): Schema {
  const resolved = params
    .map((p) => docSide(p) as { name: string; in: string; required?: boolean; schema: unknown })
    .filter((p) => p.in === where);
  const required = resolved.filter((p) => p.required).map((p) => p.name);
  return {
    type: 'object',
    ...(required.length ? { required } : {}),
    properties: Object.fromEntries(resolved.map((p) => [p.name, p.schema])),
  };
}

describe('src/api/schemas.ts and openapi.yaml', () => {
  const components = openapi.components.schemas;

  it.each([
    ['FileObject', fileObjectSchema],
    ['FileList', fileListSchema],
    ['DeletedFile', deletedFileSchema],
    ['Error', errorSchema],
    ['GatewayInfo', gatewayInfoSchema],
  ])('%s is the same schema on both sides', (name, schema) => {
    expect(docSide(components[name])).toEqual(codeSide(schema));
  });

  it('documents the list query parameters the code validates, on every list path', () => {
    for (const path of ['/v1/files', '/v1/openai/v1/files', '/alpha/files', '/alpha/files/list']) {
      const item = docSide(pointer(`#/paths/${path.replaceAll('/', '~1')}`)) as { get: { parameters: unknown[] } };
      expect(docSide(parametersSchema(item.get.parameters, 'query')), path).toEqual(codeSide(listQuerySchema));
    }
    expect(openapi.components.parameters.Limit.schema.default).toBe(LIST_LIMIT_MAX);
  });

  it('documents the file_id path parameter the code validates', () => {
    const item = docSide(openapi.components.pathItems.File) as { parameters: unknown[] };
    expect(docSide(parametersSchema(item.parameters, 'path'))).toEqual(codeSide(fileIdParamsSchema));
  });

  it('documents the upload form as the domain parses it', () => {
    expect([...components.Purpose.enum].sort()).toEqual([...PURPOSES].sort());
    expect(components.ExpiresAfter.properties.seconds).toMatchObject({
      minimum: EXPIRES_AFTER_MIN_SECONDS,
      maximum: EXPIRES_AFTER_MAX_SECONDS,
    });
  });

  it('tells a changed constraint apart (the comparison is not vacuous)', () => {
    const { maximum: _dropped, ...limit } = listQuerySchema.properties.limit;
    expect(codeSide({ ...listQuerySchema, properties: { ...listQuerySchema.properties, limit } })).not.toEqual(
      codeSide(listQuerySchema),
    );
    expect(codeSide({ ...fileObjectSchema, required: fileObjectSchema.required.slice(1) })).not.toEqual(
      codeSide(fileObjectSchema),
    );
  });
});

describe('the gateway and openapi.yaml', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('has a route for every documented operation', () => {
    const methods = ['get', 'head', 'post', 'put', 'patch', 'delete'] as const;
    for (const [path, ref] of Object.entries<Schema>(openapi.paths)) {
      const item = (typeof ref.$ref === 'string' ? pointer(ref.$ref) : ref) as Schema;
      const url = path.replace(/\{([^}]+)\}/g, ':$1');
      for (const method of methods.filter((m) => m in item)) {
        expect(gw.app.hasRoute({ method: method.toUpperCase(), url }), `${method.toUpperCase()} ${path}`).toBe(true);
      }
    }
  });
});

describe('response validation against openapi.yaml', () => {
  const file = {
    id: 'file-0190a5c3f2b87d41a9e0c3b5d7f1e2a4',
    object: 'file',
    bytes: 1,
    created_at: 1,
    expires_at: null,
    filename: 'a',
    purpose: 'assistants',
    status: 'processed',
    status_details: null,
  };
  const ok = {
    method: 'GET',
    url: 'http://gw/v1/files/file-1',
    status: 200,
    contentType: 'application/json',
    headers: { 'x-request-id': 'r' },
    body: file,
  };

  it('accepts a documented response', () => {
    expect(() => assertDocumentedResponse(ok)).not.toThrow();
  });

  it.each([
    ['an undocumented status', { status: 418 }, /GET \/v1\/files\/\{file_id\} .*status 418 is not documented/],
    [
      'a body that breaks the schema',
      { body: { ...file, bytes: '1' } },
      /GET \/v1\/files\/\{file_id\} .*body\/bytes must be integer/,
    ],
    ['an undocumented content type', { contentType: 'text/plain' }, /content type is not documented/],
    ['a missing required header', { headers: {} }, /required header X-Request-Id is missing/],
    ['a route the document does not list', { url: 'http://gw/v2/files' }, /GET \/v2\/files is not in openapi.yaml/],
    ['a method the document does not list', { method: 'PUT' }, /PUT \/v1\/files\/file-1 is not in openapi.yaml/],
  ])('refuses %s, naming the operation', (_label, change, message) => {
    expect(() => assertDocumentedResponse({ ...ok, ...change })).toThrow(message);
  });

  it('picks a literal path over a template (/alpha/files/list is the list, not a file id)', () => {
    const list = { object: 'list', data: [file], first_id: file.id, last_id: file.id, has_more: false };
    expect(() =>
      assertDocumentedResponse({ ...ok, url: 'http://gw/alpha/files/list?limit=1', body: list }),
    ).not.toThrow();
    expect(() => assertDocumentedResponse({ ...ok, url: 'http://gw/alpha/files/list' })).toThrow(
      /GET \/alpha\/files\/list .*body/,
    );
  });
});
