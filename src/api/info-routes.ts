import type { FastifyInstance } from 'fastify';
import type { PublicSettings } from '../config.js';
import { responses } from './schemas.js';

/** What GET /v1/files-gateway/info reports, handed in by the composition root (src/compose.ts). */
export interface GatewayInfo extends PublicSettings {
  version: string;
}

/**
 * GET /v1/files-gateway/info: which storage the gateway serves and who the caller is to it, so a
 * client (a LlamaStack files provider) can check it talks to the store it was configured for. It
 * lives in the Files routes' scope: it needs a key when keys are configured.
 */
export async function infoRoutes(app: FastifyInstance, opts: { info: GatewayInfo }): Promise<void> {
  const { info } = opts;
  const s3 = info.s3 && {
    endpoint: info.s3.endpoint,
    bucket: info.s3.bucket,
    region: info.s3.region,
    force_path_style: info.s3.forcePathStyle,
    tls_verify: info.s3.tlsVerify,
    prefix: info.s3.prefix,
  };
  app.get('/files-gateway/info', { schema: { response: responses.info } }, async (request) => ({
    object: 'files_gateway.info' as const,
    version: info.version,
    store: info.store,
    s3,
    max_file_bytes: info.maxFileBytes,
    caller: { tenant: request.tenant, service: request.serviceKey },
  }));
}
