/**
 * `npm run build` for the test files that run dist/main.js: once, however many of them run in
 * parallel. A lock folder serialises them, and a stamp of the sources skips a build that is current
 * (a second build would rewrite dist/ under a gateway the first file is starting).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STAMP = path.join(ROOT, 'dist', '.build-stamp');
const STALE_LOCK_MS = 5 * 60_000;

async function sourceStamp(): Promise<string> {
  const hash = createHash('sha256');
  const files = [
    ...(await fs.readdir(path.join(ROOT, 'src'), { recursive: true })).map((f) => path.join('src', f)),
    'tsconfig.json',
    'tsconfig.build.json',
    'package.json',
  ];
  for (const file of files.sort()) {
    const stat = await fs.stat(path.join(ROOT, file));
    if (stat.isFile()) hash.update(`${file} ${stat.size} ${stat.mtimeMs}\n`);
  }
  return hash.digest('hex');
}

export async function buildOnce(): Promise<void> {
  const lock = path.join(
    os.tmpdir(),
    `files-gateway-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`,
  );
  for (;;) {
    try {
      await fs.mkdir(lock);
      break;
    } catch {
      const age = await fs.stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) await fs.rm(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    const stamp = await sourceStamp();
    if ((await fs.readFile(STAMP, 'utf8').catch(() => '')) === stamp) return;
    await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT });
    await fs.writeFile(STAMP, stamp);
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}
