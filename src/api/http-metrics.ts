import { performance } from 'node:perf_hooks';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import type { GatewayMetrics, UploadOutcome } from '../metrics.js';

/** Requests that did not match a route share one label value, so odd URLs cannot grow the series. */
const UNMATCHED = 'unmatched';

/** nginx's "client closed request": the connection closed before the answer was all written. */
export const CLIENT_CLOSED_REQUEST = 499;

/**
 * Request duration and in-flight count. Observed on the raw response's 'close', which fires for
 * finished and aborted requests alike, so the in-flight gauge cannot drift. An answer that never
 * finished (the client hung up mid-upload or mid-download) counts as 499, not as the 200 Node's
 * response holds before anything is sent.
 */
export function instrumentHttp(app: FastifyInstance, metrics: GatewayMetrics): void {
  app.addHook('onRequest', async (request, reply) => {
    const start = performance.now();
    metrics.inFlight.inc();
    reply.raw.once('close', () => {
      metrics.inFlight.dec();
      metrics.httpDuration.observe(
        {
          method: request.method,
          route: request.routeOptions.url ?? UNMATCHED,
          status_code: String(reply.raw.writableFinished ? reply.raw.statusCode : CLIENT_CLOSED_REQUEST),
        },
        (performance.now() - start) / 1000,
      );
    });
  });
}

/** How an upload request ended, for files_gateway_uploads_total. */
export function uploadOutcome(err: unknown, request: FastifyRequest): UploadOutcome {
  if (err === undefined) return 'completed';
  if (request.raw.readableAborted) return 'aborted';
  if (err instanceof GatewayError && err.code === 'file_too_large') return 'too_large';
  if (err instanceof GatewayError && err.status < 500) return 'invalid';
  return 'error';
}

/** Pass bytes through, adding their count to `count` as they go. Errors travel both ways. */
export function countBytes(source: Readable, count: (n: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      count(chunk.length);
      done(null, chunk);
    },
  });
  return pipeline(source, counter, () => undefined);
}
