import type { FastifyInstance } from 'fastify';
import type { FileService } from '../files/file-service.js';
import type { GatewayMetrics } from '../metrics.js';

/** Readiness is cached this long so a burst of probes costs one round trip to each dependency. */
const READY_CACHE_MS = 1000;

/**
 * Liveness, readiness, LlamaStack's health route and the Prometheus endpoint. Probes and scrapes
 * run every few seconds: they log at warn level only.
 */
export async function healthRoutes(
  app: FastifyInstance,
  opts: { files: FileService; metrics: GatewayMetrics },
): Promise<void> {
  const quiet = { logLevel: 'warn' as const };
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  let cached: { at: number; problems: Promise<string[]> } | undefined;
  const readiness = () => {
    if (!cached || performance.now() - cached.at > READY_CACHE_MS)
      cached = { at: performance.now(), problems: opts.files.problems() };
    return cached.problems;
  };

  app.get('/healthz', quiet, async () => ({ status: 'ok' }));

  app.get('/readyz', quiet, async (_request, reply) => {
    const problems = closing ? ['shutting down'] : await readiness();
    if (problems.length === 0) return { status: 'ready' };
    return reply.code(503).header('retry-after', '1').send({ status: 'not ready', problems });
  });

  app.get('/v1/health', quiet, async () => ({ status: 'OK' }));

  app.get('/metrics', quiet, async (_request, reply) =>
    reply.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics()),
  );
}
