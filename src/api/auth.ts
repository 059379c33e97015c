import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TENANT, type ApiKey } from '../config.js';
import { GatewayError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Whose files this request may see: the API key's tenant, '' for the default tenant. */
    tenant: string;
    /** The request came with a service key, which may name its tenant with OpenAI-Project. */
    serviceKey: boolean;
  }
}

/** The openai SDKs send their `project` option as this header; a service key names its tenant with it. */
export const PROJECT_HEADER = 'openai-project';
/** How much of a refused OpenAI-Project value an error message repeats. */
const SHOWN_CHARS = 64;

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * A refused key's body is never read: Connection: close makes Node close the socket as soon as the
 * answer is out, so a stranger cannot make the gateway read (and discard) an upload it will not
 * take. With Expect: 100-continue the client hears no 100 Continue first (app.ts).
 */
const unauthorized = (message: string): GatewayError =>
  new GatewayError(401, 'invalid_request_error', 'invalid_api_key', message, null, {
    headers: { 'www-authenticate': 'Bearer realm="files-gateway"', connection: 'close' },
  });

const projectNotAllowed = (message: string): GatewayError =>
  new GatewayError(403, 'permission_error', 'project_not_allowed', message);

/** The OpenAI-Project header's tenant; undefined when it is absent or empty. */
function requestedTenant(request: FastifyRequest): string | undefined {
  const raw = request.headers[PROJECT_HEADER];
  // Node joins a repeated header with ", ", which is no tenant name: it is refused below.
  const value = Array.isArray(raw) ? raw.join(', ') : raw;
  if (value === undefined || value === '') return undefined;
  if (!TENANT.test(value)) {
    const shown = value.length > SHOWN_CHARS ? `${value.slice(0, SHOWN_CHARS)}...` : value;
    throw new GatewayError(
      400,
      'invalid_request_error',
      'invalid_project',
      `The OpenAI-Project header must name a tenant: 1-64 of A-Z a-z 0-9 . _ : @ - (got ${JSON.stringify(shown)}).`,
      'OpenAI-Project',
    );
  }
  return value;
}

interface KnownKey {
  digest: Buffer;
  tenant: string;
  service: boolean;
}

const known = (keys: readonly ApiKey[]): readonly KnownKey[] =>
  Object.freeze(keys.map((k) => Object.freeze({ digest: digest(k.key), tenant: k.tenant, service: k.service })));

/**
 * The API keys in force, as digests. `replace` swaps the whole set at once (the keys file changed):
 * a request is checked against either the old set or the new one, never a mix. Whether the gateway
 * is open is decided by the keys it starts with; a set with keys is never replaced by an empty one.
 */
export class ApiKeyRing {
  #known: readonly KnownKey[];

  constructor(keys: readonly ApiKey[]) {
    this.#known = known(keys);
  }

  /** How many keys are in force. */
  get size(): number {
    return this.#known.length;
  }

  current(): readonly KnownKey[] {
    return this.#known;
  }

  replace(keys: readonly ApiKey[]): void {
    if ((keys.length === 0) !== (this.#known.length === 0)) {
      throw new Error('an API key set cannot turn authentication on or off while the gateway runs');
    }
    this.#known = known(keys);
  }
}

/**
 * Bearer API keys for the routes registered in `api` (Files, Uploads and the gateway info; probes,
 * metrics and docs stay open). Keys are compared as SHA-256 digests with timingSafeEqual, every key
 * every time, so neither a key's length nor how much of it matched shows in the response time.
 * Without keys configured, every request is the default tenant. Each request is checked against
 * the keys in force when it arrives.
 *
 * The OpenAI-Project header names the tenant a service key acts for. An ordinary key may send its
 * own tenant there (a no-op) and no other; an open gateway refuses the header, so that nobody takes
 * it for isolation. It is checked after the key (401 first), before any body is read.
 */
export function requireApiKey(api: FastifyInstance, ring: ApiKeyRing): void {
  api.decorateRequest('tenant', '');
  api.decorateRequest('serviceKey', false);
  if (ring.size === 0) {
    api.addHook('onRequest', async (request: FastifyRequest) => {
      if (requestedTenant(request) !== undefined) {
        throw projectNotAllowed(
          'Only a service key (tenant `*` in the keys file) may name a tenant with OpenAI-Project, and this gateway has no API keys configured: every request is the default tenant.',
        );
      }
    });
    return;
  }
  const keyOf = (presented: string): { tenant: string; service: boolean } | undefined => {
    const d = digest(presented);
    let found: { tenant: string; service: boolean } | undefined;
    // One read of the ring: a swap during this loop does not mix two key sets.
    for (const k of ring.current()) if (timingSafeEqual(k.digest, d)) found ??= k;
    return found;
  };
  api.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    const token = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    if (token === undefined) {
      throw unauthorized('You did not provide an API key: send it in an Authorization header as "Bearer YOUR_KEY".');
    }
    const key = keyOf(token);
    if (key === undefined) throw unauthorized('Incorrect API key provided.');
    const project = requestedTenant(request);
    request.serviceKey = key.service;
    if (project === undefined || project === key.tenant) request.tenant = key.tenant;
    else if (key.service) request.tenant = project;
    else {
      throw projectNotAllowed(
        'This API key may not act for another tenant: only a service key (tenant `*` in the keys file) may name one with OpenAI-Project.',
      );
    }
  });
}
