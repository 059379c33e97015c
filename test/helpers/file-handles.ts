/** What the fs store's tests watch of its files: the FileHandle methods it calls, its open files, its errors. */
import { once } from 'node:events';
import { readlinkSync } from 'node:fs';
import { open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** FileHandle's prototype, whose methods the store's writes call: spy on it to see or change them. */
export async function fileHandlePrototype(dir: string) {
  const handle = await open(path.join(dir, 'probe'), 'w');
  await handle.close();
  return Object.getPrototypeOf(handle) as Pick<FileHandle, 'datasync' | 'sync'> & {
    writev: (buffers: Buffer[]) => Promise<{ bytesWritten: number; buffers: Buffer[] }>;
  };
}

/** The file a handle is open on. */
export const fileOf = (handle: FileHandle) => readlinkSync(`/proc/self/fd/${handle.fd}`);

/** An error as Node's fs raises it. */
export const fsError = (code: string, message: string) => Object.assign(new Error(`${code}: ${message}`), { code });

/**
 * Bytes `writer` takes, `piece` by `piece`, until it stops asking for more (or `most` bytes). Until
 * `writing()` says a write has begun, a full buffer most likely means the file is still being
 * opened, so silence counts as a stall only after 10 s; after that, after one.
 */
export async function acceptedUntilStalled(
  writer: Writable,
  piece: Buffer,
  most: number,
  writing: () => boolean,
): Promise<number> {
  let accepted = 0;
  while (accepted < most) {
    const more = writer.write(piece);
    accepted += piece.length;
    if (more) continue;
    const quietMs = writing() ? 1000 : 10_000;
    const drained = await Promise.race([once(writer, 'drain').then(() => true), sleep(quietMs).then(() => false)]);
    if (!drained) return accepted;
  }
  return accepted;
}

/** The process's open files under `dir`. */
export async function openFilesUnder(dir: string): Promise<string[]> {
  const targets = await Promise.all(
    (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
  );
  return targets.filter((t) => t.startsWith(dir));
}
