import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, SHIPPED_ENV, SHIPPED_NODE_FLAGS } from './gateway-process.js';
import type { RelayInput } from './minimal-relay.js';

const run = promisify(execFile);
const AUTOCANNON = path.join(
  path.dirname(createRequire(import.meta.url).resolve('autocannon/package.json')),
  'autocannon.js',
);

/**
 * Requests per second and 99th percentile latency (ms) that autocannon, in a process of its own,
 * gets from `url` in `seconds` with `connections` keep-alive connections. Any non-2xx answer or
 * socket error fails the figure.
 */
export async function load(url: string, seconds: number, connections = 32): Promise<{ rps: number; p99Ms: number }> {
  const { stdout } = await run(
    process.execPath,
    [AUTOCANNON, '--json', '--connections', String(connections), '--duration', String(seconds), url],
    {
      timeout: (seconds + 30) * 1000,
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const r = JSON.parse(stdout) as {
    requests: { total: number };
    latency: { p99: number };
    duration: number;
    non2xx: number;
    errors: number;
    timeouts: number;
  };
  if (r.non2xx > 0 || r.errors > 0 || r.timeouts > 0)
    throw new Error(`load on ${url}: ${r.non2xx} non-2xx, ${r.errors} errors, ${r.timeouts} timeouts`);
  return { rps: r.requests.total / r.duration, p99Ms: r.latency.p99 };
}

export const requestsPerSecond = async (url: string, seconds: number, connections = 32): Promise<number> =>
  (await load(url, seconds, connections)).rps;

/** A bare fastify server in its own process, serving `bodies`; resolves with its URL. */
export const startBareServer = (bodies: { file: unknown; list: unknown }) => startChildServer('bare-server.ts', bodies);

/** A bare node:http server in its own process moving bytes to and from a file in `dir`. */
export const startBareFileServer = (dir: string) => startChildServer('bare-file-server.ts', { dir });

/** The minimal Files API relay to S3 (bench/lib/minimal-relay.ts) in a process of its own. */
export const startMinimalRelay = (input: RelayInput) => startChildServer('minimal-relay.ts', input);

export interface ChildServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** bench/lib/`script` in a process of its own, given `input` as JSON on stdin; resolves with the URL it prints. */
async function startChildServer(script: string, input: unknown): Promise<ChildServer> {
  const child = spawn(
    process.execPath,
    [...SHIPPED_NODE_FLAGS, '--import', 'tsx', path.join(ROOT, 'bench', 'lib', script)],
    {
      cwd: ROOT,
      // The gateway's node flags and allocator settings: a ceiling the gateway is measured against runs as it does.
      env: { ...process.env, ...SHIPPED_ENV },
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  child.stdin.end(JSON.stringify(input));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"address"'));
      if (line) resolve((JSON.parse(line) as { address: string }).address);
    });
    void exited.then(() => reject(new Error(`${script} exited before listening`)));
  });
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
