import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiKey } from '../config.js';
import { GatewayError } from '../errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Whose files this request may see: the API key's tenant, '' for the default tenant. */
    tenant: string;
  }
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

const unauthorized = (message: string): GatewayError =>
  new GatewayError(401, 'invalid_request_error', 'invalid_api_key', message, null, {
    headers: { 'www-authenticate': 'Bearer realm="files-gateway"' },
  });

/**
 * Bearer API keys for the routes registered in `api` (Files and Uploads; probes, metrics and docs
 * stay open). Keys are compared as SHA-256 digests with timingSafeEqual, every key every time, so
 * neither a key's length nor how much of it matched shows in the response time. Without keys
 * configured, every request is the default tenant.
 */
export function requireApiKey(api: FastifyInstance, keys: readonly ApiKey[]): void {
  api.decorateRequest('tenant', '');
  if (keys.length === 0) return;
  const known = keys.map((k) => ({ digest: digest(k.key), tenant: k.tenant }));
  const tenantOf = (presented: string): string | undefined => {
    const d = digest(presented);
    let tenant: string | undefined;
    for (const k of known) if (timingSafeEqual(k.digest, d)) tenant ??= k.tenant;
    return tenant;
  };
  api.addHook('onRequest', async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    const token = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    if (token === undefined) {
      throw unauthorized('You did not provide an API key: send it in an Authorization header as "Bearer YOUR_KEY".');
    }
    const tenant = tenantOf(token);
    if (tenant === undefined) throw unauthorized('Incorrect API key provided.');
    request.tenant = tenant;
  });
}
