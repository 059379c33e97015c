import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { SHIPPED_GLIBC_TUNABLES, SHIPPED_NODE_FLAGS } from '../../test/helpers/process.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');
/**
 * The allocator settings `npm start` and the image give the gateway
 * (docs/operations.md#memory-allocator-and-node-flags), so the bench measures the process as it
 * ships; a caller's GLIBC_TUNABLES (even empty: glibc's defaults) replaces them.
 */
export const SHIPPED_ENV: Record<string, string> = { GLIBC_TUNABLES: SHIPPED_GLIBC_TUNABLES };
export { SHIPPED_NODE_FLAGS };

export interface GatewayProcess {
  /** http://127.0.0.1:PORT */
  url: string;
  pid: number;
  /** Where its stdout/stderr (pino JSON lines) go: kept out of the bench process's CPU budget. */
  logFile: string;
  /** SIGTERM, then wait for a graceful exit (which is when --cpu-prof writes its profile). */
  stop(): Promise<void>;
}

/**
 * The built gateway (`node dist/main.js serve`) as a child process with `env` on top of a minimal
 * environment, PORT=0 on loopback. Resolves once its start-up JSON line names the address.
 */
export async function startGatewayProcess(opts: {
  env: Record<string, string>;
  logFile: string;
  nodeArgs?: string[];
  /** Another build's dist/main.js (bench/compare-builds.ts); this checkout's by default. */
  main?: string;
}): Promise<GatewayProcess> {
  const fd = openSync(opts.logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...SHIPPED_NODE_FLAGS, ...(opts.nodeArgs ?? []), opts.main ?? MAIN, 'serve'], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...SHIPPED_ENV, ...opts.env },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const logTail = () => readFileSync(opts.logFile, 'utf8').split('\n').slice(-20).join('\n');
  for (let waited = 0; ; waited += 50) {
    if (exitCode !== undefined) throw new Error(`gateway exited with ${exitCode} before listening:\n${logTail()}`);
    const address = readFileSync(opts.logFile, 'utf8')
      .split('\n')
      .flatMap((line) => {
        try {
          const parsed = JSON.parse(line) as { address?: string };
          return parsed.address ? [parsed.address] : [];
        } catch {
          return [];
        }
      })[0];
    if (address) {
      return {
        url: address,
        pid: child.pid!,
        logFile: opts.logFile,
        async stop() {
          if (exitCode !== undefined) return;
          child.kill('SIGTERM');
          const timeout = sleep(30_000).then(() => 'timeout' as const);
          if ((await Promise.race([exited, timeout])) === 'timeout') {
            child.kill('SIGKILL');
            await exited;
          }
        },
      };
    }
    if (waited > 30_000) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not log its address within 30 s:\n${logTail()}`);
    }
    await sleep(50);
  }
}

/** Full garbage collections (Mark-Compact) a gateway started with --trace-gc has logged so far. */
export function fullGcs(gw: GatewayProcess): number {
  return readFileSync(gw.logFile, 'utf8').split('Mark-Compact').length - 1;
}

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM are reported in kB). */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Resets VmHWM to the current RSS (clear_refs "5"); false where the kernel or permissions refuse. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS every `everyMs` until stopped: the peak, and VmHWM where it could be reset. */
export function sampleRss(
  pid: number,
  everyMs = 50,
): { stop(): { peak: number; hwm: number | undefined; samples: number } } {
  const hwmUsable = resetPeak(pid);
  let peak = procStatusBytes(pid, 'VmRSS');
  let samples = 1;
  const timer = setInterval(() => {
    peak = Math.max(peak, procStatusBytes(pid, 'VmRSS'));
    samples++;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, procStatusBytes(pid, 'VmRSS'));
      return { peak, hwm: hwmUsable ? procStatusBytes(pid, 'VmHWM') : undefined, samples: samples + 1 };
    },
  };
}

/** Median VmRSS over `ms` of doing nothing: the baseline that growth is measured from. */
export async function idleRss(pid: number, ms = 1000): Promise<number> {
  const values: number[] = [];
  for (let t = 0; t < ms; t += 50) {
    values.push(procStatusBytes(pid, 'VmRSS'));
    await sleep(50);
  }
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)]!;
}
