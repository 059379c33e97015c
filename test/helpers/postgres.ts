/**
 * A throw-away PostgreSQL cluster from Debian's `postgresql` package: initdb in a temp folder,
 * started with pg_ctl on a free loopback port, trust authentication. PostgreSQL refuses to run as
 * root, so under root the server runs as the `postgres` user (runuser, or su where runuser is missing).
 */
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './rgw.js';

const exec = promisify(execFile);

export interface PgCluster {
  port: number;
  /** A connection URL for `database` (the password is there to prove it is never logged). */
  url(database: string): string;
  /** A fresh, empty database; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** pg_ctl restart -m fast: every session is cut, the server comes back on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** The newest installed server's bin folder (pg_ctl is not on Debian's PATH). */
function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'pg_ctl'))) return path.join(root, v, 'bin');
  const onPath = (process.env.PATH ?? '').split(path.delimiter).find((dir) => {
    try {
      accessSync(path.join(dir, 'pg_ctl'), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  return onPath;
}

export function havePostgres(): boolean {
  return binDir() !== undefined;
}

const isRoot = () => process.getuid?.() === 0;

/** argv run as the server's owner: ourselves, or `postgres` when we are root. */
function asOwner(argv: string[]): [string, string[]] {
  if (!isRoot()) return [argv[0]!, argv.slice(1)];
  if (spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status === 0)
    return ['runuser', ['-u', 'postgres', '--', ...argv]];
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return ['su', ['postgres', '-s', '/bin/sh', '-c', quoted]];
}

async function runAsOwner(argv: string[]): Promise<void> {
  const [cmd, args] = asOwner(argv);
  await exec(cmd, args, { env: { PATH: process.env.PATH!, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' } });
}

export async function startPostgres(): Promise<PgCluster> {
  const bin = binDir();
  if (!bin) throw new Error('PostgreSQL server binaries not found (apt-get install -y postgresql)');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'files-gateway-pg-'));
  if (isRoot()) {
    const { stdout } = await exec('id', ['-u', 'postgres']).catch(() => {
      throw new Error('running as root needs the `postgres` user (it comes with the postgresql package)');
    });
    const { stdout: gid } = await exec('id', ['-g', 'postgres']);
    chownSync(tmp, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = path.join(tmp, 'data');
  const port = await freePort();
  // -l on every start: without it the server inherits pg_ctl's stdout and the call never returns.
  const pgCtl = (...args: string[]) =>
    runAsOwner([path.join(bin, 'pg_ctl'), '-D', data, '-w', '-t', '60', '-l', path.join(tmp, 'server.log'), ...args]);
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${tmp} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`;
  const stopSync = () => {
    spawnSync(...asOwner([path.join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', 'stop']), { stdio: 'ignore' });
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  try {
    await runAsOwner([
      path.join(bin, 'initdb'),
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    await pgCtl('-o', options, 'start');
  } catch (err) {
    stopSync();
    process.off('exit', stopSync);
    throw err;
  }
  const url = (database: string) => `postgres://postgres:not-a-secret-pw@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
    restart: () => pgCtl('-o', options, '-m', 'fast', 'restart'),
    async stop() {
      await pgCtl('-m', 'fast', 'stop');
      rmSync(tmp, { recursive: true, force: true });
      process.off('exit', stopSync);
    },
  };
}
