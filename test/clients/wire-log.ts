import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Gateway } from '../helpers/gateway.js';

export interface SeenRequest {
  method: string;
  /** Path and query exactly as the client sent them. */
  url: string;
  headers: IncomingHttpHeaders;
}

/**
 * Records every request the gateway's socket receives, as it arrived on the wire (method, raw URL,
 * headers), so client tests can assert what a real SDK actually sent: which path prefix it used,
 * whether an upload was chunked, which cursor it paginated with. It only listens; Fastify's own
 * 'request' listener still answers.
 */
export function recordRequests(gw: Gateway): { seen: SeenRequest[]; clear(): void; stop(): void } {
  const seen: SeenRequest[] = [];
  const onRequest = (req: IncomingMessage) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
  };
  gw.app.server.on('request', onRequest);
  return {
    seen,
    clear: () => void seen.splice(0, seen.length),
    stop: () => void gw.app.server.off('request', onRequest),
  };
}

/** The path of a recorded URL without its query string. */
export const pathOf = (url: string): string => url.split('?')[0]!;

/** The query parameters of a recorded URL. */
export const queryOf = (url: string): URLSearchParams => new URLSearchParams(url.split('?')[1] ?? '');
