/**
 * Real LlamaStack servers for the end-to-end tests: OGX 0.8.0 and llama-stack 0.7.1 from source, in
 * the Debian trixie chroot that scripts/llamastack-e2e.sh sets up. The chroot shares /tmp with this
 * machine 1:1, so configurations, logs and the provider package are staged under /tmp.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort } from '../helpers/rgw.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROOT = process.env.OGX_E2E_ROOT ?? '/opt/trixie';
const E2E = '/opt/ogx-e2e';

export type Flavor = 'ogx' | 'llama-stack';

export const FLAVORS: Record<Flavor, { label: string; src: string; main: string }> = {
  ogx: { label: 'OGX 0.8.0', src: `${E2E}/ogx/src`, main: 'ogx.cli.ogx' },
  'llama-stack': { label: 'llama-stack 0.7.1', src: `${E2E}/llama-stack-0.7.1/src`, main: 'llama_stack.cli.llama' },
};

/**
 * Why the servers cannot run here, or undefined when they can. FILES_TEST_REQUIRE_LLAMASTACK=1 (CI)
 * turns a missing chroot into a failure instead of a skip.
 */
export function unavailable(): string | undefined {
  let reason: string | undefined;
  if (process.getuid?.() !== 0) reason = 'the chroot needs root';
  else if (!existsSync(path.join(CHROOT, E2E, 'ogx', 'src'))) reason = `no LlamaStack chroot at ${CHROOT}`;
  else if (!sharesTmp()) reason = `${CHROOT}/tmp is not this machine's /tmp (the bind mount is gone)`;
  if (reason === undefined) return undefined;
  const message = `LlamaStack end-to-end tests skipped: ${reason}; run scripts/llamastack-e2e.sh setup first`;
  if (process.env.FILES_TEST_REQUIRE_LLAMASTACK === '1') throw new Error(message);
  console.warn(message);
  return message;
}

function sharesTmp(): boolean {
  const marker = `/tmp/.files-gateway-chroot-${process.pid}`;
  writeFileSync(marker, '');
  try {
    return existsSync(path.join(CHROOT, marker));
  } finally {
    rmSync(marker, { force: true });
  }
}

/** A Python program in the chroot, with the server's sources and the staged provider importable. */
export function python(
  args: string[],
  opts: { flavor?: Flavor; pythonPath?: string[]; cwd?: string; env?: Record<string, string> } = {},
) {
  const flavor = FLAVORS[opts.flavor ?? 'ogx'];
  const pythonPath = [...(opts.pythonPath ?? []), flavor.src, `${E2E}/vendor`].join(':');
  const env = Object.entries({
    PATH: '/usr/bin:/bin',
    HOME: '/tmp',
    PYTHONPATH: pythonPath,
    PYTHONUNBUFFERED: '1',
    ...opts.env,
  }).map(([k, v]) => `${k}=${v}`);
  const inner = opts.cwd ? ['sh', '-c', `cd "$0" && exec "$@"`, opts.cwd, 'python3', ...args] : ['python3', ...args];
  return { command: 'chroot', args: [CHROOT, 'env', '-i', ...env, ...inner] };
}

/** Run a Python program to its end; resolves with its exit code and output. */
export function runPython(args: string[], opts: Parameters<typeof python>[1] & { timeoutMs?: number } = {}) {
  const { command, args: argv } = python(args, opts);
  const result = spawnSync(command, argv, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 300_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    output: `${result.stdout}\n${result.stderr}`,
  };
}

/** Resident memory of a process on this machine (a chroot's too), bytes. */
export const rssOf = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** A temp folder under /tmp, seen at the same path inside the chroot. */
export async function sharedTemp(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join('/tmp', prefix));
}

/**
 * The provider as a deployment gets it: the wheel built offline from integrations/llamastack, installed
 * into a folder that goes on the servers' PYTHONPATH. Returns that folder and the wheel's path.
 */
export async function installProviderWheel(): Promise<{ site: string; wheel: string }> {
  const work = await sharedTemp('files-gateway-provider-');
  await fs.cp(path.join(ROOT, 'integrations', 'llamastack'), path.join(work, 'src'), {
    recursive: true,
    filter: (p) => !/(__pycache__|\.egg-info|\/build$|\/dist$|\.pytest_cache)/.test(p),
  });
  const build = runPython(['-m', 'build', '--no-isolation', '--wheel', '--outdir', `${work}/dist`, `${work}/src`]);
  if (build.status !== 0) throw new Error(`wheel build failed:\n${build.output}`);
  const wheel = (await fs.readdir(path.join(work, 'dist'))).find((f) => f.endsWith('.whl'));
  if (!wheel) throw new Error(`no wheel in ${work}/dist:\n${build.output}`);
  const install = runPython([
    '-m',
    'pip',
    'install',
    '--no-index',
    '--no-deps',
    '--target',
    `${work}/site`,
    `${work}/dist/${wheel}`,
  ]);
  if (install.status !== 0) throw new Error(`wheel install failed:\n${install.output}`);
  return { site: `${work}/site`, wheel: `${work}/dist/${wheel}` };
}

export interface StackOptions {
  flavor: Flavor;
  /** The `providers.files` entries of the configuration. */
  files: Record<string, unknown>[];
  /** Folders on PYTHONPATH before the server's own (the installed provider). */
  pythonPath?: string[];
  /** Environment of the server process (OPENAI_BASE_URL for remote::openai). */
  env?: Record<string, string>;
  /** `server.auth.provider_config` of the configuration: LlamaStack authenticates its users. */
  auth?: Record<string, unknown>;
}

export interface Stack {
  url: string;
  flavor: Flavor;
  pid: number;
  logs: () => string;
  /** Resident memory of the server process, bytes. */
  rss: () => number;
  stop: () => Promise<void>;
}

function configFor(opts: StackOptions, dir: string): Record<string, unknown> {
  return {
    version: 2,
    distro_name: 'files-gateway-e2e',
    apis: ['files'],
    providers: { files: opts.files },
    storage: {
      backends: {
        kv_default: { type: 'kv_sqlite', db_path: `${dir}/kvstore.db` },
        sql_default: { type: 'sql_sqlite', db_path: `${dir}/sql_store.db` },
      },
      stores: {
        metadata: { namespace: 'registry', backend: 'kv_default' },
        inference: { table_name: 'inference_store', backend: 'sql_default' },
        conversations: { table_name: 'openai_conversations', backend: 'sql_default' },
        prompts: { namespace: 'prompts', backend: 'kv_default' },
      },
    },
    server: { port: 8321, ...(opts.auth ? { auth: { provider_config: opts.auth } } : {}) },
  };
}

/** Start a server and wait for its health route; rejects with its log when it exits first. */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const dir = await sharedTemp(`files-gateway-${opts.flavor}-`);
  await fs.writeFile(path.join(dir, 'config.yaml'), stringify(configFor(opts, dir)));
  const port = await freePort();
  const { command, args } = python(
    ['-m', FLAVORS[opts.flavor].main, 'stack', 'run', `${dir}/config.yaml`, '--port', String(port)],
    {
      flavor: opts.flavor,
      pythonPath: opts.pythonPath,
      env: opts.env,
    },
  );
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d));
  child.stderr!.on('data', (d: Buffer) => (log += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await fs.rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new StackExit(child.exitCode, log);
    const ok = await fetch(`${url}/v1/health`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${FLAVORS[opts.flavor].label} did not become healthy in 90 s:\n${log}`);
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
  }
  return {
    url,
    flavor: opts.flavor,
    pid: child.pid!,
    logs: () => log,
    rss: () => rssOf(child.pid!),
    stop,
  };
}

export class StackExit extends Error {
  constructor(
    readonly code: number | null,
    readonly log: string,
  ) {
    super(`LlamaStack exited with ${code} before it was healthy:\n${log.slice(-4000)}`);
  }
}

/** pytest's closing counts ("3 passed, 3 xfailed in 0.84s"), by outcome. */
export function pytestCounts(output: string): Record<string, number> {
  const line = output
    .split('\n')
    .reverse()
    .find((l) => /\d+ (passed|failed|error|xfailed|xpassed|skipped)/.test(l) && / in [\d.]+s/.test(l));
  if (!line) throw new Error(`no pytest summary in:\n${output.slice(-3000)}`);
  return Object.fromEntries([...line.matchAll(/(\d+) (\w+)/g)].map((m) => [m[2]!.replace(/s$/, ''), Number(m[1])]));
}
