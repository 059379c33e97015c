import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const AUTOCANNON = path.join(path.dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js');

/**
 * Requests per second that autocannon, in a process of its own, gets from `url` in `seconds` with
 * `connections` keep-alive connections. Any non-2xx answer or socket error fails the figure.
 */
export async function requestsPerSecond(url: string, seconds: number, connections = 32): Promise<number> {
  const { stdout } = await run(process.execPath, [AUTOCANNON, '--json', '--connections', String(connections), '--duration', String(seconds), url], {
    timeout: (seconds + 30) * 1000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const r = JSON.parse(stdout) as { requests: { total: number }; duration: number; non2xx: number; errors: number; timeouts: number };
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0) throw new Error(`load on ${url}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  return r.requests.total / r.duration;
}
