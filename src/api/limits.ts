import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import type { Limits } from '../config.js';
import { GatewayError } from '../errors.js';

/** Probes and scrapes answer under load: a busy replica is still alive, and its metrics say why. */
const EXEMPT = new Set(['/healthz', '/readyz', '/v1/health', '/metrics']);
/** Requests whose bodies stream into the store (POST /files, upload parts): the ones capped together. */
const UPLOAD_ROUTE = /\/(files|parts)$/;

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
    if (request.method !== 'POST' || !UPLOAD_ROUTE.test(request.routeOptions.url ?? '')) return;
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
