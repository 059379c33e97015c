import fs from 'node:fs/promises';
import path from 'node:path';

/** A fresh folder for one bench run, under `root` (BENCH_TMP or the OS temp dir), created when missing. */
export async function runTempDir(root: string, prefix: string): Promise<string> {
  await fs.mkdir(root, { recursive: true });
  return fs.mkdtemp(path.join(root, prefix));
}
