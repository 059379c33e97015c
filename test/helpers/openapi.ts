import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi/openapi.yaml', import.meta.url));
export const openapi: any = parse(readFileSync(OPENAPI_PATH, 'utf8'));

const DOC_ID = 'openapi.yaml';
// OpenAPI 3.1 schemas are JSON Schema 2020-12. The whole document is one schema resource, so a
// schema anywhere in it is compiled by its pointer and its #/components/... refs resolve as written.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
addFormats.default(ajv);
// Compiling a pointer compiles the document's root too: its OpenAPI fields are declared as inert
// keywords, so strict mode still rejects any unknown keyword inside a real schema.
for (const field of [
  'openapi',
  'info',
  'jsonSchemaDialect',
  'servers',
  'paths',
  'webhooks',
  'components',
  'security',
  'tags',
  'externalDocs',
]) {
  ajv.addKeyword({ keyword: field });
}
ajv.addSchema(openapi, DOC_ID);

const escapePointer = (segment: string) => segment.replaceAll('~', '~0').replaceAll('/', '~1');

/** The value at a local JSON pointer, following one $ref if it is one; with its own pointer. */
function resolve(pointer: string): { pointer: string; value: any } {
  let value: any = openapi;
  for (const raw of pointer.replace(/^#\//, '').split('/')) {
    value = value?.[raw.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  if (value === undefined) throw new Error(`openapi.yaml has nothing at ${pointer}`);
  return typeof value.$ref === 'string' ? resolve(value.$ref) : { pointer, value };
}

const validators = new Map<string, ValidateFunction>();
function validatorAt(pointer: string): ValidateFunction {
  let validate = validators.get(pointer);
  if (!validate) {
    validate = ajv.compile({ $ref: `${DOC_ID}${pointer}` });
    validators.set(pointer, validate);
  }
  return validate;
}

/** Validates a value against components/schemas/<name>; returns ajv's error text or undefined. */
export function schemaErrors(name: string, value: unknown): string | undefined {
  const validate = validatorAt(`#/components/schemas/${escapePointer(name)}`);
  return validate(value) ? undefined : ajv.errorsText(validate.errors, { dataVar: 'body' });
}

/** Path templates that match a concrete path, most specific (fewest {params}) first, as OpenAPI orders them. */
function matchingTemplates(pathname: string): string[] {
  const segments = pathname.split('/');
  return Object.keys(openapi.paths)
    .filter((template) => {
      const parts = template.split('/');
      return parts.length === segments.length && parts.every((p, i) => /^\{[^}]+\}$/.test(p) || p === segments[i]);
    })
    .sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
}

const isJson = (mediaType: string) => mediaType === 'application/json' || mediaType.endsWith('+json');

export interface ObservedResponse {
  method: string;
  url: string;
  status: number;
  /** The Content-Type header as sent, parameters included. */
  contentType: string | undefined;
  headers: Record<string, unknown>;
  /** The parsed JSON body, or the raw bytes for any other (or an empty) body. */
  body: unknown;
}

/**
 * Throws unless the response is one openapi.yaml documents for its operation: the status, the
 * required headers, the content type and the body against the schema. A path or method the
 * document does not list must be the gateway's not-found envelope: the gateway serves no route
 * the document omits.
 */
export function assertDocumentedResponse(res: ObservedResponse): void {
  const method = res.method.toLowerCase();
  // The gateway ignores one trailing slash (routerOptions.ignoreTrailingSlash).
  const pathname = new URL(res.url).pathname.replace(/(.)\/$/, '$1');
  const template = matchingTemplates(pathname).find((t) => resolve(`#/paths/${escapePointer(t)}`).value[method]);
  const mediaType = res.contentType?.split(';')[0]?.trim().toLowerCase() ?? '';

  if (!template) {
    const errors =
      res.status === 404 && isJson(mediaType) ? schemaErrors('Error', res.body) : 'not the 404 error envelope';
    if (errors)
      throw new Error(
        `${res.method} ${pathname} is not in openapi.yaml, yet answered ${res.status} ${mediaType}: ${errors}`,
      );
    return;
  }

  const label = `${res.method.toUpperCase()} ${template} (${pathname})`;
  const fail = (why: string): never => {
    throw new Error(`openapi.yaml: ${label} answered ${res.status} ${mediaType || '(no content type)'}: ${why}`);
  };
  const operation = resolve(`#/paths/${escapePointer(template)}`);
  const responses = operation.value[method].responses;
  const key = [String(res.status), `${String(res.status)[0]}XX`, 'default'].find((k) => k in responses);
  if (!key) fail(`status ${res.status} is not documented (documented: ${Object.keys(responses).join(', ')})`);
  const response = resolve(`${operation.pointer}/${method}/responses/${escapePointer(key!)}`);

  for (const [name, header] of Object.entries<any>(response.value.headers ?? {})) {
    const required = header.$ref ? resolve(header.$ref).value.required : header.required;
    if (required && res.headers[name.toLowerCase()] === undefined) fail(`required header ${name} is missing`);
  }

  const empty = Buffer.isBuffer(res.body) && res.body.length === 0;
  // HEAD answers have no body by definition; their documented headers were checked above.
  if (method === 'head') return;
  if (!response.value.content) {
    if (!empty) fail('a body was sent where none is documented');
    return;
  }
  if (!(mediaType in response.value.content)) {
    fail(`content type is not documented (documented: ${Object.keys(response.value.content).join(', ')})`);
  }
  if (!isJson(mediaType)) return;
  const validate = validatorAt(`${response.pointer}/content/${escapePointer(mediaType)}/schema`);
  if (!validate(res.body))
    fail(`body does not match the schema: ${ajv.errorsText(validate.errors, { dataVar: 'body' })}`);
}
