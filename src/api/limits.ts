import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Limits } from '../config.js';
import { GatewayError } from '../errors.js';

/** Probes and scrapes answer under load: a busy replica is still alive, and its metrics say why. */
const EXEMPT = new Set(['/healthz', '/readyz', '/v1/health', '/metrics']);
/** Requests whose bodies stream into the store (POST /files, upload parts): the ones capped together. */
const UPLOAD_ROUTE = /\/(files|parts)$/;
const isUpload = (request: FastifyRequest): boolean =>
  request.method === 'POST' && UPLOAD_ROUTE.test(request.routeOptions.url ?? '');

/**
 * Shedding is a transient condition, so it is a 503 with Retry-After: the openai SDKs retry 429
 * and 5xx alike, and 503 says "this server, right now" rather than "you, slow down".
 */
export const overloaded = (message: string): GatewayError =>
  new GatewayError(503, 'service_unavailable', 'overloaded', message, null, { headers: { 'retry-after': '1' } });

/** Node's own HTTP server limits: header size and how long the headers may take to arrive. */
export function serverOptions(limits: Limits): {
  maxHeaderSize: number;
  headersTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    // Node checks the headers timeout only this often (30 s by default).
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, limits.headersTimeoutMs / 4)),
  };
}

/**
 * Load shedding (event loop, memory, concurrent uploads) and the idle timeout. Registered before
 * the routes so every route is covered.
 */
export async function protect(app: FastifyInstance, limits: Limits): Promise<void> {
  await app.register(underPressure, {
    maxEventLoopDelay: limits.maxEventLoopDelayMs,
    maxHeapUsedBytes: limits.maxHeapUsedBytes,
    maxRssBytes: limits.maxRssBytes,
    pressureHandler: async (request, _reply, type) => {
      if (EXEMPT.has(request.routeOptions.url ?? '')) return;
      throw overloaded(`The server is overloaded (${type}), try again later.`);
    },
  });

  let uploads = 0;
  app.addHook('onRequest', async (request, reply) => {
    if (!isUpload(request)) return;
    if (uploads >= limits.maxConcurrentUploads) {
      throw overloaded(`${uploads} uploads are in progress, the most this server takes at once; try again later.`);
    }
    uploads++;
    reply.raw.once('close', () => uploads--);
  });

  // The response in progress on each socket, so a time-out can tell whose turn it is.
  const current = new WeakMap<Socket, ServerResponse>();
  app.addHook('onRequest', async (request, reply) => {
    current.set(request.raw.socket, reply.raw);
  });
  // A listener replaces Node's destroy-on-timeout: a socket idle while the gateway itself works
  // (body read, answer not started: an S3 assembly, say) is not the client's fault.
  app.server.setTimeout(limits.idleTimeoutMs, (socket: Socket) => {
    const res = current.get(socket);
    if (res?.req.complete && !res.headersSent) return;
    // The client stopped sending its body or stopped reading the answer: the request's stream
    // errors, and the upload it fed is aborted like any other failed upload.
    socket.destroy();
  });
}

/**
 * One tenant's share of the upload slots is full. The answer closes the connection, so the body is
 * never read: Node would otherwise read and discard it to keep the connection open.
 */
const tenantOverloaded = (limit: number): GatewayError =>
  new GatewayError(
    503,
    'service_unavailable',
    'tenant_overloaded',
    `This tenant has ${limit} uploads in progress, the most one tenant may run at once; try again later.`,
    null,
    { headers: { 'retry-after': '1', connection: 'close' } },
  );

/** The client, not the gateway, is the bottleneck: a retry would trickle the same way, so no Retry-After. */
export const uploadTooSlow = (bytesPerSecond: number, windowSeconds: number): GatewayError =>
  new GatewayError(
    408,
    'invalid_request_error',
    'upload_too_slow',
    `The upload was cut off: its body arrived slower than ${bytesPerSecond} bytes per second over ${windowSeconds} seconds, the least this server accepts.`,
    null,
    { headers: { connection: 'close' } },
  );

export const isTooSlow = (err: unknown): boolean => err instanceof GatewayError && err.code === 'upload_too_slow';

/**
 * Fairness between tenants for the upload routes in `api`, registered after the API key check so
 * the tenant is known, and before any body is read: a cap on each tenant's uploads in progress
 * (under the global one of `protect`), and a minimum rate for every upload body. Without API keys
 * every request is the one default tenant, whose cap would only lower the global one: there is none.
 */
export function shareUploads(api: FastifyInstance, opts: { limits: Limits; open: boolean }): void {
  const { limits } = opts;
  const perTenant = opts.open ? 0 : limits.maxConcurrentUploadsPerTenant;
  // Only tenants with uploads in progress have an entry.
  const inProgress = new Map<string, number>();
  api.addHook('onRequest', async (request, reply) => {
    if (!isUpload(request)) return;
    if (perTenant > 0) {
      const tenant = request.tenant;
      const held = inProgress.get(tenant) ?? 0;
      if (held >= perTenant) throw tenantOverloaded(perTenant);
      inProgress.set(tenant, held + 1);
      // 'close' fires once however the request ends: answered, refused later, failed or aborted.
      reply.raw.once('close', () => {
        const left = inProgress.get(tenant)! - 1;
        if (left === 0) inProgress.delete(tenant);
        else inProgress.set(tenant, left);
      });
    }
    if (limits.minUploadBytesPerSecond > 0) enforceMinRate(request, reply, limits);
  });
}

/**
 * Cuts an upload whose body delivers fewer than the minimum bytes in a window (the idle timeout
 * alone lets one byte a minute hold a slot forever). Bytes are counted on the socket, form framing
 * included. A window in which the gateway was not reading (the store applying backpressure, a
 * lookup before the body is read) is not held against the client. The cut fails the body's readers
 * with a 408, so the upload takes the same failure path as an aborted one and leaves nothing behind.
 */
function enforceMinRate(request: FastifyRequest, reply: FastifyReply, limits: Limits): void {
  const req = request.raw;
  const socket = req.socket;
  const windowSeconds = limits.minUploadRateWindowMs / 1000;
  const least = limits.minUploadBytesPerSecond * windowSeconds;
  let mark = socket.bytesRead;
  let paused = false;
  const onPause = () => {
    paused = true;
  };
  req.on('pause', onPause);
  const timer = setInterval(() => {
    if (req.complete || reply.raw.headersSent) return stop();
    const delivered = socket.bytesRead - mark;
    mark = socket.bytesRead;
    const gatewayIdle = paused || req.readableFlowing !== true;
    paused = false;
    if (gatewayIdle || delivered >= least) return;
    stop();
    request.log.warn(
      { tenant: request.tenant, delivered, windowSeconds, minBytesPerSecond: limits.minUploadBytesPerSecond },
      'upload cut off: too slow',
    );
    // Its readers (the form parser, a content-type parser) listen for errors on the request; failing
    // them leaves the socket open for the answer, which then closes it. Nobody reading: just close.
    if (req.listenerCount('error') > 0) req.emit('error', uploadTooSlow(limits.minUploadBytesPerSecond, windowSeconds));
    else socket.destroy();
  }, limits.minUploadRateWindowMs);
  timer.unref();
  function stop(): void {
    clearInterval(timer);
    req.off('pause', onPause);
  }
  reply.raw.once('close', stop);
  req.once('end', stop);
}
