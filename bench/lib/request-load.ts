import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const CLI = path.join(path.dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js');

export interface RequestLoad {
  /** 2xx answers per second */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** 2xx answers in all */
  ok: number;
  /** non-2xx answers and socket errors: non2xx + errors */
  failed: number;
  /** non-2xx answers */
  non2xx: number;
  /** socket errors and timeouts (autocannon gives up on a request after 10 s) */
  errors: number;
}

export interface RequestShape {
  method?: 'GET' | 'POST' | 'PUT';
  /** name → value */
  headers?: Record<string, string>;
  /** A file whose text is every request's body (autocannon reads it as UTF-8: keep it ASCII). */
  bodyFile?: string;
  /** How long a client waits for an answer before it drops the connection and counts a timeout (autocannon's default: 10 s). */
  timeoutSeconds?: number;
  /** Stop the load after this many errors and timeouts (a server that has stopped answering). */
  bailout?: number;
}

/**
 * autocannon in a process of its own: `connections` keep-alive clients sending the same request
 * to `url` for `limit.seconds`, or until `limit.requests` have been answered (a warm-up). Unlike
 * load() (bench/lib/load.ts), failed requests are counted, not thrown: a server under comparison
 * failing some, or all, is a result to report.
 */
export async function requestLoad(
  url: string,
  limit: { seconds: number } | { requests: number },
  connections: number,
  shape: RequestShape = {},
): Promise<RequestLoad> {
  const args = ['--json', '-c', String(connections), '-m', shape.method ?? 'GET'];
  if ('seconds' in limit) args.push('-d', String(limit.seconds));
  else args.push('-a', String(limit.requests));
  for (const [name, value] of Object.entries(shape.headers ?? {})) args.push('-H', `${name}:${value}`);
  if (shape.bodyFile) args.push('-i', shape.bodyFile);
  if (shape.timeoutSeconds) args.push('-t', String(shape.timeoutSeconds));
  if (shape.bailout) args.push('-b', String(shape.bailout));
  const { stdout } = await execFileAsync(process.execPath, [CLI, ...args, url], {
    timeout: ('seconds' in limit ? limit.seconds + 60 : 600) * 1000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const report = JSON.parse(stdout) as {
    '2xx': number;
    non2xx: number;
    errors: number;
    duration: number;
    latency: { p50: number; p99: number };
  };
  return {
    rps: report['2xx'] / report.duration,
    p50Ms: report.latency.p50,
    p99Ms: report.latency.p99,
    ok: report['2xx'],
    failed: report.non2xx + report.errors,
    non2xx: report.non2xx,
    errors: report.errors,
  };
}
