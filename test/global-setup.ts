/**
 * Starts ONE S3 server for the whole test run and hands its coordinates to the test files through
 * vitest's provide/inject (`inject('s3')`). Test files make their own buckets (test/helpers/s3.ts).
 *
 * The server is Ceph's RADOS Gateway (scripts/ceph-rgw.sh): a real S3 implementation. When radosgw
 * is not installed, s3rver stands in with a loud warning, because it hides signature, range and
 * multipart bugs; FILES_TEST_REQUIRE_RGW=1 (CI) turns that fallback into a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { ACCESS_KEY, SECRET_KEY, startRgw } from './helpers/rgw.js';

export interface S3TestServer {
  backend: 'rgw' | 's3rver';
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    s3: S3TestServer;
  }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

// s3rver makes ListObjectsV2 continuation tokens with DES, which Node >= 17's OpenSSL refuses
// unless the legacy provider is on: it runs in a child process started with that flag.
const S3RVER_MAIN = `
const S3rver = require('s3rver');
require('s3rver/lib/models/account').DUMMY_ACCOUNT.createKeyPair(process.env.S3_ACCESS_KEY, process.env.S3_SECRET_KEY);
const server = new S3rver({ address: '127.0.0.1', port: 0, directory: process.env.S3RVER_DATA, silent: true });
server.run().then((a) => console.log('PORT=' + a.port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

async function startS3rver(tmp: string): Promise<{ server: S3TestServer; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER_MAIN], {
    cwd: ROOT,
    env: { ...process.env, S3RVER_DATA: tmp, S3_ACCESS_KEY: ACCESS_KEY, S3_SECRET_KEY: SECRET_KEY },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      const m = /PORT=(\d+)/.exec(String(d));
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited ${code} before listening`)));
  });
  return {
    server: {
      backend: 's3rver',
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      accessKeyId: ACCESS_KEY,
      secretAccessKey: SECRET_KEY,
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'files-gateway-s3-'));
  const haveRgw = ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin'].every(onPath);
  let started: { server: S3TestServer; stop: () => Promise<void> };
  try {
    if (haveRgw) {
      started = await startRgw(tmp);
    } else if (process.env.FILES_TEST_REQUIRE_RGW === '1') {
      throw new Error(
        'FILES_TEST_REQUIRE_RGW=1 but Ceph RGW is not installed ' +
          '(apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common)',
      );
    } else {
      const bar = '!'.repeat(100);
      console.warn(
        `\n${bar}\n!! radosgw is not installed: the S3 tests run against s3rver, a FAKE that does not check\n` +
          '!! signatures, mangles suffix ranges and lacks multipart listing and versioning. Passing here\n' +
          '!! proves little. Install: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd ceph-common\n' +
          `${bar}\n`,
      );
      started = await startS3rver(tmp);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  project.provide('s3', started.server);
  return async () => {
    await started.stop();
    rmSync(tmp, { recursive: true, force: true });
  };
}
