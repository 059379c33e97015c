import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { env } from './env.js';

/** A fresh folder for one bench run, under BENCH_TMP (created when missing) or the OS temp dir. */
export async function runTempDir(prefix: string): Promise<string> {
  const root = env.text('BENCH_TMP') ?? os.tmpdir();
  await fs.mkdir(root, { recursive: true });
  return fs.mkdtemp(path.join(root, prefix));
}
