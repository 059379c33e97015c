import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BlobNotFoundError, GatewayError } from '../errors.js';
import { BatchedFileWriter } from './batched-file-writer.js';
import type {
  BlobMeta,
  BlobRead,
  BlobStat,
  BlobStore,
  ByteRange,
  PartRef,
  PartStore,
  StoredBlob,
} from './blob-store.js';
import { concatSlices, wholeParts, withMd5Check } from './part-assembly.js';

/**
 * Reads of 512 KiB: each read is a trip to libuv's thread pool and one socket write, and much of a
 * download's CPU goes per trip. Against 256 KiB: less CPU per GiB served and more throughput;
 * 1 MiB saved no more and page-faulted more often. An open download holds a few reads in buffers
 * (docs/decisions/0010-fs-downloads-read-512-kib.md).
 */
export const READ_CHUNK_BYTES = 512 * 1024;

/**
 * A rename into `dir`, or a folder made in it, survives a power cut only once the folder itself is
 * synced. Some file systems (FUSE and SMB mounts among them) cannot sync a folder and say so with
 * EINVAL or EBADF: there is nothing more to do, as PostgreSQL also concludes for its own folders.
 */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await handle.close();
  }
}

/** mkdir -p, with every folder it makes synced into its parent. */
async function mkdirSynced(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let made = dir; made !== path.dirname(made); made = path.dirname(made)) {
    await syncDir(path.dirname(made));
    if (made === first) return;
  }
}

/** Rename each temp file to its target in `dir` and sync `dir`; if that fails, no target is left. */
async function renameSynced(dir: string, moves: [from: string, to: string][]): Promise<void> {
  try {
    for (const [from, to] of moves) await fs.rename(from, to);
    await syncDir(dir);
  } catch (err) {
    await Promise.all(moves.map(([, to]) => fs.rm(to, { force: true }))).catch(() => undefined);
    throw err;
  }
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

/**
 * Disk full is not the client's fault and passes once space is freed, without a restart: a 503
 * whose Retry-After asks the SDKs (which retry any 5xx) to wait rather than resend at once.
 */
function translate(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new GatewayError(
      503,
      'service_unavailable',
      'insufficient_storage',
      'The file store is out of space, try again later.',
      null,
      {
        cause: err,
        headers: { 'retry-after': '30' },
      },
    );
  }
  return err;
}

/**
 * The embedded default store: one file per blob plus a JSON sidecar with its rebuild metadata.
 *
 *   <dir>/files/<last two hex digits of the id>/<id>            the bytes
 *   <dir>/files/<last two hex digits of the id>/<id>.meta.json  filename, purpose, times, size
 *   <dir>/tmp/                                                  writes in progress
 *   <dir>/uploads/<upload id>/<part id>                         parts of an Uploads API upload
 *
 * Writes go to tmp/ and are renamed into place when complete, so a reader never sees half a blob.
 * A put resolves only once the bytes, the sidecar and the renames are on the disk: the catalog row
 * written next must not survive a power cut that its blob does not.
 * Sharding on the id's random tail keeps directories small at a million files.
 * One process owns a data folder: init() clears tmp/ of whatever a crashed process left.
 */
export class FsBlobStore implements BlobStore {
  readonly kind = 'fs';
  readonly location: string;
  private readonly filesDir: string;
  private readonly tmpDir: string;
  private readonly uploadsDir: string;
  readonly parts: PartStore = this;
  /**
   * Folders known to exist and be synced into their parents, by path. Concurrent writers into a new
   * folder wait for the same mkdirSynced, so none renames into it and returns before it is synced.
   */
  private readonly syncedDirs = new Map<string, Promise<void>>();

  constructor(dir: string) {
    this.location = path.resolve(dir);
    this.filesDir = path.join(this.location, 'files');
    this.tmpDir = path.join(this.location, 'tmp');
    this.uploadsDir = path.join(this.location, 'uploads');
  }

  async init(): Promise<void> {
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.tmpDir, { recursive: true });
    await this.ensureDir(this.filesDir);
  }

  private ensureDir(dir: string): Promise<void> {
    let made = this.syncedDirs.get(dir);
    if (!made) {
      made = mkdirSynced(dir);
      this.syncedDirs.set(dir, made);
      made.catch(() => this.syncedDirs.delete(dir));
    }
    return made;
  }

  private blobPath(id: string): string {
    return path.join(this.filesDir, id.slice(-2), id);
  }

  private metaPath(id: string): string {
    return `${this.blobPath(id)}.meta.json`;
  }

  private tmpPath(id: string): string {
    return path.join(this.tmpDir, `${id}.${randomBytes(6).toString('hex')}`);
  }

  async put(id: string, body: Readable, meta?: BlobMeta | Promise<BlobMeta | undefined>): Promise<StoredBlob> {
    // The sidecar is written and flushed while the body streams: for a small file the two flushes
    // then share one journal commit instead of taking one each. Metadata that comes after the body
    // is waited for: it costs the rename nothing.
    const sidecar = meta
      ? Promise.resolve(meta).then((known) => (known ? this.stageMeta(id, known) : undefined))
      : undefined;
    sidecar?.catch((err: Error) => body.destroy(err));
    try {
      return await this.writeVia(id, body, async (tmp) => {
        const target = this.blobPath(id);
        const shard = path.dirname(target);
        await this.ensureDir(shard);
        const staged = await sidecar;
        await renameSynced(
          shard,
          staged
            ? [
                [staged, this.metaPath(id)],
                [tmp, target],
              ]
            : [[tmp, target]],
        );
        return { ...(await this.stat(id)), metaStored: staged !== undefined };
      });
    } catch (err) {
      await sidecar?.then(
        (tmp) => (tmp === undefined ? undefined : fs.rm(tmp, { force: true })),
        () => undefined,
      );
      throw err;
    }
  }

  /** Stream `body` into a temp file, then let `place` move it into position; no temp file outlives a failure. */
  private async writeVia<T>(name: string, body: Readable, place: (tmp: string) => Promise<T>): Promise<T> {
    const tmp = this.tmpPath(name);
    const out = new BatchedFileWriter(tmp);
    try {
      await pipeline(body, out);
      return await place(tmp);
    } catch (err) {
      // pipeline can settle on a body that failed early before the writer has even opened (and so
      // created) its file: remove it only once the writer is closed.
      if (!out.closed) await new Promise<void>((closed) => out.once('close', closed));
      await fs.rm(tmp, { force: true });
      throw translate(err);
    }
  }

  async putMeta(id: string, meta: BlobMeta): Promise<void> {
    const shard = path.dirname(this.metaPath(id));
    let tmp: string | undefined;
    try {
      await this.ensureDir(shard);
      tmp = await this.stageMeta(id, meta);
      await fs.rename(tmp, this.metaPath(id));
      await syncDir(shard);
    } catch (err) {
      if (tmp) await fs.rm(tmp, { force: true });
      throw translate(err);
    }
  }

  /** The sidecar in a flushed temp file, ready to be renamed into place; nothing is left if it fails. */
  private async stageMeta(id: string, meta: BlobMeta): Promise<string> {
    const tmp = this.tmpPath(`${id}.meta`);
    try {
      const handle = await fs.open(tmp, 'wx');
      try {
        await handle.writeFile(JSON.stringify(meta));
        await handle.datasync();
      } finally {
        await handle.close();
      }
      return tmp;
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }

  async get(id: string, range?: ByteRange): Promise<BlobRead> {
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(this.blobPath(id), 'r');
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(id);
      throw err;
    }
    try {
      const st = await handle.stat();
      const stream = createReadStream('', {
        fd: handle,
        start: range?.start,
        end: range?.end,
        highWaterMark: READ_CHUNK_BYTES,
      });
      return { stream, size: st.size, etag: etagOf(st) };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async stat(id: string): Promise<BlobStat> {
    try {
      const st = await fs.stat(this.blobPath(id));
      return { size: st.size, etag: etagOf(st) };
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(id);
      throw err;
    }
  }

  async delete(id: string): Promise<void> {
    // Bytes first: a sidecar without bytes is ignored by list(), bytes without a sidecar are not.
    await fs.rm(this.blobPath(id), { force: true });
    await fs.rm(this.metaPath(id), { force: true });
  }

  async *list(): AsyncIterable<{ id: string; meta: BlobMeta }> {
    const shards = await fs.readdir(this.filesDir).catch((err) => (isMissing(err) ? [] : Promise.reject(err)));
    for (const shard of shards.sort()) {
      const names = await fs.readdir(path.join(this.filesDir, shard));
      for (const name of names.sort()) {
        if (!name.endsWith('.meta.json')) continue;
        const id = name.slice(0, -'.meta.json'.length);
        let size: number;
        try {
          size = (await this.stat(id)).size;
        } catch (err) {
          if (err instanceof BlobNotFoundError) continue;
          throw err;
        }
        const meta = JSON.parse(await fs.readFile(path.join(this.filesDir, shard, name), 'utf8')) as BlobMeta;
        yield { id, meta: { ...meta, tenant: meta.tenant ?? '', bytes: size } };
      }
    }
  }

  async pruneLeftovers(before: Date): Promise<number> {
    const old = async (file: string) => (await fs.stat(file).catch(() => undefined))?.mtime.getTime() ?? Infinity;
    let removed = 0;
    const remove = async (file: string) => {
      if ((await old(file)) >= before.getTime()) return;
      await fs.rm(file, { force: true });
      removed++;
    };
    for (const name of await fs.readdir(this.tmpDir).catch(() => [])) await remove(path.join(this.tmpDir, name));
    const shards = await fs.readdir(this.filesDir).catch((err) => (isMissing(err) ? [] : Promise.reject(err)));
    for (const shard of shards) {
      const names = new Set(await fs.readdir(path.join(this.filesDir, shard)));
      for (const name of names) {
        // bytes whose sidecar never got written, or (after a crash mid-delete) a sidecar without bytes
        const orphan = name.endsWith('.meta.json')
          ? !names.has(name.slice(0, -'.meta.json'.length))
          : !names.has(`${name}.meta.json`);
        if (orphan) await remove(path.join(this.filesDir, shard, name));
      }
    }
    return removed;
  }

  async ping(): Promise<void> {
    await fs.access(this.filesDir, fs.constants.W_OK);
  }

  async close(): Promise<void> {}

  private partPath(uploadId: string, partId: string): string {
    return path.join(this.uploadsDir, uploadId, partId);
  }

  async putPart(uploadId: string, partId: string, body: Readable): Promise<number> {
    return this.writeVia(partId, body, async (tmp) => {
      const target = this.partPath(uploadId, partId);
      await this.ensureDir(path.dirname(target));
      await renameSynced(path.dirname(target), [[tmp, target]]);
      return (await fs.stat(target)).size;
    });
  }

  /** A streamed concatenation through put(): temp file, then rename, so the bytes pass once. */
  async assemble(
    targetId: string,
    uploadId: string,
    parts: readonly PartRef[],
    meta: BlobMeta,
    md5?: string,
  ): Promise<BlobStat> {
    const bytes = concatSlices(wholeParts(parts), async (slice) =>
      createReadStream(this.partPath(uploadId, slice.partId), { highWaterMark: READ_CHUNK_BYTES }),
    );
    return this.put(targetId, withMd5Check(bytes, md5), meta);
  }

  async deleteParts(uploadId: string, partIds?: readonly string[]): Promise<void> {
    if (partIds !== undefined) {
      for (const partId of partIds) await fs.rm(this.partPath(uploadId, partId), { force: true });
      return;
    }
    const dir = path.join(this.uploadsDir, uploadId);
    this.syncedDirs.delete(dir);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Size and modification time, as nginx does: cheap, and changes whenever the bytes could have. */
function etagOf(st: { size: number; mtimeMs: number }): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}
