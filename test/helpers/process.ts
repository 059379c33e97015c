import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');

const PACKAGE = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  config: { glibcTunables: string; nodeFlags: string };
};
/**
 * The GLIBC_TUNABLES that `npm start` and the image give the gateway
 * (docs/operations.md#memory-allocator-and-node-flags).
 */
export const SHIPPED_GLIBC_TUNABLES = PACKAGE.config.glibcTunables;
/**
 * The node flags that `npm start` and the image run the gateway with
 * (docs/operations.md#memory-allocator-and-node-flags).
 */
export const SHIPPED_NODE_FLAGS = PACKAGE.config.nodeFlags.split(' ');

export interface Served {
  child: ChildProcessWithoutNullStreams;
  url: string;
  startLine: Record<string, unknown>;
  logs: string[];
  exited: Promise<number | null>;
}

/**
 * Runs the built gateway (`node dist/main.js serve`, or `command`) on a free port and waits for its
 * start-up line.
 */
export async function serve(env: Record<string, string>, command = [process.execPath, MAIN, 'serve']): Promise<Served> {
  const child = spawn(command[0]!, command.slice(1), {
    env: { PATH: process.env.PATH!, PORT: '0', HOST: '127.0.0.1', ...env },
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const startLine = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        const parsed = JSON.parse(line) as Record<string, unknown>;
        if (parsed.address) resolve(parsed);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
    void exited.then((code) => reject(new Error(`gateway exited with ${code} before listening:\n${logs.join('\n')}`)));
  });
  return { child, url: String(startLine.address), startLine, logs, exited };
}
