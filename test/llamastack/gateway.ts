/**
 * The built gateway as a process (dist/main.js), on the fs store or on the run's Ceph RGW, seen
 * from the end-to-end tests: direct calls with a key and an optional OpenAI-Project tenant.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { serve, type Served } from '../helpers/process.js';
import { createTestBucket, type TestBucket } from '../helpers/s3.js';
import { ROOT, rssOf, sharedTemp } from './stack.js';

export const SERVICE_KEY = 'sk-llamastack-service-0001';
export const DEFAULT_KEY = 'sk-default-tenant-key-0001';
export type Store = 'fs' | 'rgw';

export interface E2eGateway {
  url: string;
  store: Store;
  /** Whether the gateway wants API keys (the fs gateway) or is open (the RGW one). */
  keyed: boolean;
  bucket: TestBucket | undefined;
  /** Resident memory of the gateway process, bytes. */
  rss(): number;
  /** Direct call: the default tenant's key, or the service key acting for `tenant`. */
  call(
    method: string,
    route: string,
    opts?: { tenant?: string; body?: BodyInit; headers?: Record<string, string> },
  ): Promise<Response>;
  stop(): Promise<void>;
  /** Start again on the same port and data (after stop). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startE2eGateway(store: Store, env: Record<string, string> = {}): Promise<E2eGateway> {
  if (!existsSync(path.join(ROOT, 'dist', 'main.js')))
    throw new Error('dist/main.js is missing: npm run test:llamastack builds it');
  const dataDir = await sharedTemp('files-gateway-e2e-data-');
  const bucket = store === 'rgw' ? await createTestBucket({ label: 'llamastack' }) : undefined;
  const keyed = store === 'fs';
  const settings: Record<string, string> = {
    FILES_DATA_DIR: dataDir,
    ...(keyed ? { FILES_API_KEYS: `${SERVICE_KEY} *,${DEFAULT_KEY}` } : {}),
    ...(bucket
      ? {
          FILES_S3_ENDPOINT: bucket.server.endpoint,
          FILES_S3_BUCKET: bucket.config().bucket,
          FILES_S3_REGION: bucket.server.region,
          FILES_S3_FORCE_PATH_STYLE: 'true',
          FILES_S3_TLS_VERIFY: 'false',
          FILES_S3_ACCESS_KEY_ID: bucket.server.accessKeyId,
          FILES_S3_SECRET_ACCESS_KEY: bucket.server.secretAccessKey,
        }
      : {}),
    ...env,
  };
  let served: Served = await serve(settings);
  const port = new URL(served.url).port;
  const gw: E2eGateway = {
    url: served.url,
    store,
    keyed,
    bucket,
    rss: () => rssOf(served.child.pid!),
    call(method, route, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers };
      if (keyed) headers.authorization = `Bearer ${opts.tenant === undefined ? DEFAULT_KEY : SERVICE_KEY}`;
      if (opts.tenant !== undefined) headers['openai-project'] = opts.tenant;
      return fetch(`${gw.url}${route}`, { method, headers, body: opts.body });
    },
    async stop() {
      served.child.kill('SIGTERM');
      await served.exited;
    },
    async restart() {
      served = await serve({ ...settings, PORT: port });
    },
    async close() {
      if (served.child.exitCode === null) await gw.stop();
      await bucket?.destroy();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
  return gw;
}

/** curl on this machine; resolves with the status line's code and the body. */
export function curl(args: string[]): { status: number; body: string } {
  const result = spawnSync('curl', ['-sS', '-w', '\n%{http_code}', ...args], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`curl ${args.join(' ')} failed: ${result.stderr}`);
  const at = result.stdout.lastIndexOf('\n');
  return { status: Number(result.stdout.slice(at + 1)), body: result.stdout.slice(0, at) };
}
