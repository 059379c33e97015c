/**
 * A throw-away Ceph RGW cluster (scripts/ceph-rgw.sh) from a test process: one for the whole run
 * (test/global-setup.ts), or a private one for a test that stops and restarts RGW.
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3TestServer } from '../global-setup.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'ceph-rgw.sh');
export const ACCESS_KEY = 'TESTACCESSKEY0000001';
export const SECRET_KEY = 'testsecretkey0000000000000000000000000001';

export interface RgwCluster {
  server: S3TestServer;
  /** Stop everything and remove the data. */
  stop(): Promise<void>;
  /** Kill only radosgw (an S3 outage); the data stays. */
  rgwStop(): Promise<void>;
  /** Start radosgw again on the same port. */
  rgwStart(): Promise<void>;
}

/** A port free right now (the OS picks it); the small race until the server binds it is accepted. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${code}:\n${err}`)),
    );
  });
}

/** Start a one-node cluster with its data under `tmp`. */
export async function startRgw(tmp: string): Promise<RgwCluster> {
  const env = {
    ...process.env,
    CEPH_RGW_DIR: path.join(tmp, 'rgw'),
    CEPH_RGW_PORT: String(await freePort()),
    CEPH_MON_PORT: String(await freePort()),
    S3_ACCESS_KEY: ACCESS_KEY,
    S3_SECRET_KEY: SECRET_KEY,
  };
  // The daemons live in their own sessions: if this process dies without teardown, stop them anyway.
  const stopSync = () => {
    spawnSync('bash', [SCRIPT, 'stop'], { env: { ...env, CEPH_STOP_FAST: '1' }, stdio: 'ignore' });
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  const out = await run('bash', [SCRIPT, 'start'], env);
  const vars = Object.fromEntries(
    out.split('\n').flatMap((l) => (/^\w+=/.test(l) ? [l.split(/=(.*)/s).slice(0, 2)] : [])),
  );
  return {
    server: {
      backend: 'rgw',
      endpoint: vars.S3_ENDPOINT!,
      region: vars.S3_REGION!,
      accessKeyId: vars.S3_ACCESS_KEY!,
      secretAccessKey: vars.S3_SECRET_KEY!,
    },
    stop: async () => {
      await run('bash', [SCRIPT, 'stop'], env);
      process.off('exit', stopSync);
    },
    rgwStop: async () => {
      await run('bash', [SCRIPT, 'rgw-stop'], { ...env, CEPH_STOP_FAST: '1' });
    },
    rgwStart: async () => {
      await run('bash', [SCRIPT, 'rgw-start'], env);
    },
  };
}
