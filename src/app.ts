import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import type { Logger } from 'pino';
import type { FileService } from './files/file-service.js';
import { docsRoutes } from './api/docs-routes.js';
import { type ApiKeyRing, requireApiKey } from './api/auth.js';
import { clientErrorHandler, expectationFailed, registerErrorHandlers, sendError } from './api/errors.js';
import { filesRoutes } from './api/files-routes.js';
import { healthRoutes } from './api/health-routes.js';
import { infoRoutes, type GatewayInfo } from './api/info-routes.js';
import { instrumentHttp } from './api/http-metrics.js';
import type { GatewayMetrics } from './metrics.js';
import { multipartOptions } from './api/multipart.js';
import { protect, serverOptions, shareUploads } from './api/limits.js';
import type { Limits } from './config.js';
import { sharedSchemas } from './api/schemas.js';
import { uploadsRoutes } from './api/uploads-routes.js';
import { buildValidator } from './api/validation.js';

/** Every LlamaStack client generation and the openai SDKs find the same handlers under one of these. */
export const FILES_PREFIXES = ['/v1', '/v1/openai/v1', '/alpha'] as const;
/** The Uploads API is newer than /alpha: only the openai-style prefixes carry it. */
export const UPLOADS_PREFIXES = ['/v1', '/v1/openai/v1'] as const;

export interface AppDeps {
  files: FileService;
  logger: Logger;
  metrics: GatewayMetrics;
  limits: Limits;
  /**
   * Bearer keys for the Files and Uploads routes; none: open, one default tenant. A ring when the
   * keys may change while the gateway runs (the keys file is re-read).
   */
  apiKeys: ApiKeyRing;
  /** What GET /v1/files-gateway/info reports (from the configuration: no credentials, no paths). */
  info: GatewayInfo;
}

/** A client's x-request-id is kept when it is a plausible id, so logs can be joined across services. */
const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const logger: FastifyBaseLogger = deps.logger;
  const { limits } = deps;
  const app = Fastify({
    loggerInstance: logger,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Uploads can take long: no deadline for a whole request, but headers and idle sockets have theirs.
    requestTimeout: 0,
    http: serverOptions(limits),
    return503OnClosing: true,
    // One log line per request, written when it ends (below), instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
    // Undecodable URLs (bad percent-encoding) get the same error envelope as everything else.
    frameworkErrors: sendError,
    // JSON bodies are validated without type coercion; query strings, params and headers keep it.
    schemaController: { compilersFactory: { buildValidator } },
    // So do requests Node's HTTP parser refuses before any route sees them.
    clientErrorHandler: clientErrorHandler(logger),
  });

  // Expect: 100-continue: Node would send 100 Continue before any hook ran, inviting the body of a
  // request about to be refused (a bad key, shedding). Handled here, the 100 goes out only when the
  // body is about to be read (the preParsing hook below), after every onRequest check has passed;
  // a request refused before that gets its answer alone and its connection closed by Node.
  const awaitingContinue = new WeakSet<IncomingMessage>();
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    app.server.emit('request', req, res);
  });
  // Any other expectation cannot be met: 417, through the hooks so it is logged and counted.
  const unmetExpectation = new WeakSet<IncomingMessage>();
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    unmetExpectation.add(req);
    app.server.emit('request', req, res);
  });

  // llama-stack-client sends DELETE with Content-Type: application/json and no body.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined);
    else jsonParser(request, body as string, done);
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  instrumentHttp(app, deps.metrics);
  app.addHook('onRequest', async (request) => {
    if (unmetExpectation.has(request.raw)) throw expectationFailed();
  });
  app.addHook('preParsing', async (request, reply) => {
    if (awaitingContinue.delete(request.raw) && !reply.raw.headersSent) reply.raw.writeContinue();
  });
  // request.log honours each route's logLevel, so probes and scrapes (warn) stay out of the info log.
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        req: { method: request.method, url: request.url },
        res: { statusCode: reply.statusCode },
        responseTime: reply.elapsedTime,
      },
      'request completed',
    );
  });
  // While shutting down, answers to requests already in flight close their connection, so a
  // keep-alive client does not hold the process open until its idle timeout.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  await protect(app, limits);
  await app.register(multipart, multipartOptions(limits.multipart));
  for (const schema of sharedSchemas) app.addSchema(schema);
  registerErrorHandlers(app);
  // The Files, Uploads and info routes share one encapsulated scope: the API key check applies to them only.
  await app.register(async (api) => {
    requireApiKey(api, deps.apiKeys);
    // After the key check, which names the tenant.
    shareUploads(api, { limits, open: deps.apiKeys.size === 0 });
    for (const prefix of FILES_PREFIXES)
      await api.register(filesRoutes, { prefix, files: deps.files, metrics: deps.metrics });
    for (const prefix of UPLOADS_PREFIXES) await api.register(uploadsRoutes, { prefix, uploads: deps.files.uploads });
    await api.register(infoRoutes, { prefix: '/v1', info: deps.info });
  });
  await app.register(healthRoutes, { files: deps.files, metrics: deps.metrics });
  await app.register(docsRoutes);
  return app;
}
