import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Catalog, Cursor, FileRecord, RecordShape } from '../catalog/catalog.js';
import type { BlobMeta, BlobStore, ByteRange, StoredBlob } from '../storage/blob-store.js';
import { BlobNotFoundError, badRequest, fileNotFound, fileTooLarge, rangeNotSatisfiable } from '../errors.js';
import { drain } from './drain.js';
import { fileIdTimeMs, isFileId, newFileId } from './ids.js';
import { type FormPart, UploadFields, parseFilename, parsePurpose } from './upload-form.js';
import { UploadService } from './upload-service.js';

export const LIST_LIMIT_MAX = 10_000;

export interface ListParams {
  limit?: number;
  order?: 'asc' | 'desc';
  after?: string;
  purpose?: string;
}

/** A page of files, each as JSON text of the shape the caller asked for (FileService.list). */
export interface RenderedPage {
  json: string[];
  /** Of the first and last file; undefined on an empty page. */
  firstId: string | undefined;
  lastId: string | undefined;
  hasMore: boolean;
}

/** A byte range as a Range header states it, before the file's size is known. */
export type RangeSpec = { start: number; end?: number } | { suffix: number };

export interface FileContent {
  file: FileRecord;
  stream: Readable;
  /** Inclusive byte range being sent, or undefined for the whole file. */
  range: ByteRange | undefined;
  size: number;
  etag: string;
}

/** Where a client fetches a file's bytes itself (presigned downloads), and what it will find there. */
export interface ContentLink {
  file: FileRecord;
  url: string;
  size: number;
  etag: string;
}

export interface FileServiceOptions {
  store: BlobStore;
  catalog: Catalog;
  maxFileBytes: number;
  log: Logger;
  /** Milliseconds since the epoch; injectable so expiry can be tested without waiting. */
  now?: () => number;
  /** Uploads API limits: declared bytes of one upload, and bytes of one part. */
  maxUploadBytes: number;
  maxPartBytes: number;
  /** Set: downloads may be handed out as presigned URLs valid this long (the store must presign). */
  downloadUrlTtlSeconds?: number;
}

/** What one sweep removed: expired files, and uploads whose parts were released. */
export interface SweepReport {
  files: number;
  uploads: number;
}

const SWEEP_BATCH = 500;

/**
 * The Files domain. It owns the invariants: bytes are stored before the row that points at them and
 * removed before it, once the row is claimed for removal; a failed upload leaves neither; expired
 * files are invisible everywhere.
 */
export class FileService {
  private readonly store: BlobStore;
  private readonly catalog: Catalog;
  private readonly maxFileBytes: number;
  private readonly log: Logger;
  private readonly nowMs: () => number;
  private readonly downloadUrlTtlSeconds: number | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<SweepReport> | undefined;
  /** The Uploads API over the same store and catalog: a completed upload is one of these files. */
  readonly uploads: UploadService;

  constructor(opts: FileServiceOptions) {
    this.store = opts.store;
    this.catalog = opts.catalog;
    this.maxFileBytes = opts.maxFileBytes;
    this.log = opts.log;
    this.nowMs = opts.now ?? Date.now;
    if (opts.downloadUrlTtlSeconds !== undefined && !this.store.presignGet)
      throw new Error(`presigned downloads need a store that presigns URLs; the ${this.store.kind} store cannot`);
    this.downloadUrlTtlSeconds = opts.downloadUrlTtlSeconds;
    this.uploads = new UploadService({
      store: this.store,
      catalog: this.catalog,
      log: this.log,
      now: this.nowMs,
      maxUploadBytes: opts.maxUploadBytes,
      maxPartBytes: opts.maxPartBytes,
    });
  }

  private nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  /**
   * Store one uploaded file. Fields may come before or after the file part (openai-node sends the
   * file first), so the bytes are streamed under a fresh id straight away and the row is written only
   * once the whole form is valid; on any failure the stored bytes are removed again.
   */
  async upload(tenant: string, form: AsyncIterable<FormPart>): Promise<FileRecord> {
    const fields = new UploadFields();
    let staged: { id: string; createdAt: number; filename: string; bytes: number } | undefined;
    // The store's write of the file part. When fields follow the file (openai-node, curl -F file
    // first), the store gets a promise of the metadata, settled once the form is read; a store
    // that waits for it (a small body on S3) must not be waited for before then.
    let putting: Promise<StoredBlob> | undefined;
    let settleMeta: ((meta: BlobMeta | undefined) => void) | undefined;
    try {
      for await (const part of form) {
        if (part.kind === 'field') {
          fields.add(part.name, part.value);
          continue;
        }
        if (part.name !== 'file') {
          part.stream.resume();
          throw badRequest(
            'unexpected_field',
            `Additional properties are not allowed ('${part.name}' was unexpected)`,
            part.name,
          );
        }
        if (staged) {
          part.stream.resume();
          throw badRequest('duplicate_field', "Only one 'file' may be uploaded per request.", 'file');
        }
        const nowMs = this.nowMs();
        const filename = parseFilename(part.filename);
        const id = newFileId(nowMs);
        staged = { id, createdAt: Math.floor(nowMs / 1000), filename, bytes: 0 };
        // When purpose came first (python and llama-stack clients) the metadata rides along with the bytes.
        const meta = fields.purposeKnown
          ? this.blobMeta(tenant, staged, fields)
          : new Promise<BlobMeta | undefined>((resolve) => (settleMeta = resolve));
        part.stream.setLimit(this.maxFileBytes, () => fileTooLarge(this.maxFileBytes));
        putting = this.store.put(id, part.stream, meta);
        if (!settleMeta) await putting;
      }
      if (!staged || !putting) throw badRequest('missing_field', "'file' is a required property", 'file');
      const meta = this.blobMeta(tenant, staged, fields);
      settleMeta?.(meta);
      const put = await putting;
      if (!put.metaStored) await this.store.putMeta(staged.id, meta);
      const record: FileRecord = { id: staged.id, ...meta, bytes: put.size };
      await this.catalog.upsert(record);
      return record;
    } catch (err) {
      settleMeta?.(undefined);
      if (staged) {
        // the write may still be under way: it settles before its bytes are removed
        await putting?.catch(() => undefined);
        await this.store
          .delete(staged.id)
          .catch((cleanupErr) =>
            this.log.error({ err: cleanupErr, fileId: staged!.id }, 'could not remove the bytes of a failed upload'),
          );
      }
      throw err;
    }
  }

  private blobMeta(
    tenant: string,
    staged: { createdAt: number; filename: string; bytes: number },
    fields: UploadFields,
  ): BlobMeta {
    const { purpose, ttlSeconds } = fields.finish();
    return {
      tenant,
      filename: staged.filename,
      purpose,
      createdAt: staged.createdAt,
      expiresAt: ttlSeconds === null ? null : staged.createdAt + ttlSeconds,
      bytes: staged.bytes,
    };
  }

  /**
   * A page of `params.limit` files, each rendered by the catalog as JSON text of `shape`, which must
   * show the id (the page's first and last ids are read back from it). The catalog is asked for one
   * more row, to tell whether more follow.
   */
  async list(tenant: string, params: ListParams, shape: RecordShape): Promise<RenderedPage> {
    const idKey = shape.find(([, source]) => 'field' in source && source.field === 'id')?.[0];
    if (idKey === undefined) throw new Error('a list shape must show the id');
    const limit = params.limit ?? LIST_LIMIT_MAX;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) {
      throw badRequest('invalid_limit', `limit must be an integer from 1 to ${LIST_LIMIT_MAX}.`, 'limit');
    }
    const order = params.order ?? 'desc';
    const purpose = params.purpose === undefined ? undefined : parsePurpose(params.purpose);
    const after = params.after === undefined ? undefined : await this.cursorOf(tenant, params.after);
    const rows = await this.catalog.list(
      { tenant, order, limit: limit + 1, after, purpose, now: this.nowSeconds() },
      shape,
    );
    const json = rows.slice(0, limit);
    const idOf = (text: string | undefined) => text && (JSON.parse(text) as Record<string, string>)[idKey];
    return { json, firstId: idOf(json[0]), lastId: idOf(json.at(-1)), hasMore: rows.length > limit };
  }

  /**
   * Where a list continues after `id`. The catalog places it at the row's own (created_at, id); the
   * creation time embedded in an id we minted places it when the file was deleted since the last
   * page. An id without one (taken over by reindex) must still be there.
   */
  private async cursorOf(tenant: string, id: string): Promise<Cursor> {
    if (!isFileId(id)) throw badRequest('invalid_after', `after must be a file id (file-...), got '${id}'.`, 'after');
    const ms = fileIdTimeMs(id);
    if (ms !== undefined) return { createdAt: Math.floor(ms / 1000), id };
    const row = await this.catalog.get(id);
    if (row?.tenant !== tenant) throw badRequest('invalid_after', `after: no file with id ${id}.`, 'after');
    return { createdAt: row.createdAt, id };
  }

  /**
   * The live row for `id` as `tenant` sees it, or 404: malformed ids, expired files and other
   * tenants' files are all simply not found (never 403, which would confirm the id exists).
   */
  async retrieve(tenant: string, id: string): Promise<FileRecord> {
    const row = isFileId(id) ? await this.catalog.get(id) : undefined;
    if (!row || row.tenant !== tenant || (row.expiresAt !== null && row.expiresAt <= this.nowSeconds()))
      throw fileNotFound(id);
    return row;
  }

  /**
   * Remove a file. Of any number of DELETEs racing for it, and the sweeper, the one whose claim wins
   * answers with the file; every other caller gets 404, as if it came after.
   */
  async delete(tenant: string, id: string): Promise<FileRecord> {
    const row = await this.retrieve(tenant, id);
    if (!(await this.catalog.claimRemoval(row.id))) throw fileNotFound(id);
    await this.finishRemoval(row.id);
    return row;
  }

  /**
   * The steps of a removal, in this order (invariant 2):
   * 1. claim the row (Catalog.claimRemoval): one conditional write that exactly one caller wins,
   *    across replicas. The claim expires the row, so from here on every reader sees 404 and no
   *    list shows it, while the bytes are still there: a reader never finds a row without bytes.
   * 2. remove the bytes (only the winner goes on; store deletes are idempotent);
   * 3. remove the row.
   * A crash or a store error after 1 leaves a claimed row with or without its bytes; it is expired,
   * so the sweeper finds it (claimed rows come first) and runs 2 and 3 again. The row outlives the
   * bytes, never the other way round: no blob is left without a row for reindex to bring back after
   * a 200 (before the sweeper finishes an unacknowledged removal, a reindex restores the file).
   */
  private async finishRemoval(id: string): Promise<void> {
    await this.store.delete(id);
    await this.catalog.delete(id);
  }

  async openContent(tenant: string, id: string, rangeSpec?: RangeSpec): Promise<FileContent> {
    const file = await this.retrieve(tenant, id);
    const range = rangeSpec && resolveRange(rangeSpec, file.bytes);
    const blob = await this.fromStore(id, () => this.store.get(id, range));
    return { file, stream: blob.stream, range, size: blob.size, etag: blob.etag };
  }

  /** Whether contentLink() hands out URLs: the routes then redirect downloads instead of streaming them. */
  get linksContent(): boolean {
    return this.downloadUrlTtlSeconds !== undefined;
  }

  /**
   * A short-lived URL of the bytes, issued after exactly the checks openContent makes (the row, its
   * tenant and expiry, then the bytes in the store), so a redirect reveals no more than a download.
   * It expires after the configured TTL or with the file, whichever comes first. `response` gives
   * the headers the store is to answer with, from the file's row.
   */
  async contentLink(
    tenant: string,
    id: string,
    response: (file: FileRecord) => { contentType: string; contentDisposition: string },
  ): Promise<ContentLink> {
    const ttl = this.downloadUrlTtlSeconds;
    if (ttl === undefined || !this.store.presignGet) throw new Error('presigned downloads are not enabled');
    const { file, size, etag } = await this.statContent(tenant, id);
    // retrieve() has made sure the file outlives now by at least a second
    const lifetime = file.expiresAt === null ? ttl : Math.min(ttl, file.expiresAt - this.nowSeconds());
    const url = await this.store.presignGet(file.id, { expiresInSeconds: lifetime, ...response(file) });
    return { file, url, size, etag };
  }

  /** What a HEAD of the content shows: the store's own size and ETag, no bytes opened. */
  async statContent(tenant: string, id: string): Promise<{ file: FileRecord; size: number; etag: string }> {
    const file = await this.retrieve(tenant, id);
    const stat = await this.fromStore(id, () => this.store.stat(id));
    return { file, ...stat };
  }

  /** A store call for a file the catalog has: bytes removed behind our back make the row stale. */
  private async fromStore<T>(id: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
      this.log.warn({ fileId: id }, 'file bytes missing from the store; removing its catalog row');
      await this.catalog.delete(id);
      throw fileNotFound(id);
    }
  }

  /** What keeps the service from working right now: an empty list when store and catalog answer. */
  async problems(): Promise<string[]> {
    const check = async (what: string, ping: () => Promise<void>) =>
      ping().then(
        () => [],
        (err: unknown) => [`${what}: ${err instanceof Error ? err.message : String(err)}`],
      );
    const [store, catalog] = await Promise.all([
      check(`${this.store.kind} store`, () => this.store.ping()),
      check(`${this.catalog.kind} catalog`, () => this.catalog.ping()),
    ]);
    return [...store, ...catalog];
  }

  /**
   * Delete every expired file and release finished uploads now. Runs one sweep at a time, in this
   * process and across replicas sharing the catalog: while another replica sweeps, this one skips
   * (and reports nothing removed), so each expired file is deleted once.
   */
  sweep(): Promise<SweepReport> {
    this.sweeping ??= this.catalog
      .runExclusive('sweep', () => this.sweepAll())
      .then((report) => report ?? { files: 0, uploads: 0 })
      .finally(() => {
        this.sweeping = undefined;
      });
    return this.sweeping;
  }

  private async sweepAll(): Promise<SweepReport> {
    const files = await this.sweepExpired();
    return { files, uploads: await this.uploads.sweep() };
  }

  /**
   * Every expired row is claimed, then its removal finished. A lost claim means the row was already
   * claimed, by a DELETE still at work or by a removal that crashed, and is finished here too (the
   * steps are idempotent), but counted only by its claimant: each file is removed once.
   */
  private async sweepExpired(): Promise<number> {
    let removed = 0;
    await drain(
      (limit) => this.catalog.expired(this.nowSeconds(), limit),
      async (file) => {
        const claimed = await this.catalog.claimRemoval(file.id);
        await this.finishRemoval(file.id);
        if (claimed) removed++;
      },
      SWEEP_BATCH,
    );
    return removed;
  }

  startSweeper(intervalMs: number): void {
    this.sweepTimer = setInterval(() => {
      // A sweep slower than the interval is still at work: it reports its own result, once.
      if (this.sweeping) return;
      this.sweep()
        .then(
          (r) =>
            (r.files > 0 || r.uploads > 0) &&
            this.log.info(
              { removed: r.files, uploadsReleased: r.uploads },
              'expired files removed, finished uploads released',
            ),
        )
        .catch((err) => this.log.error({ err }, 'expiry sweep failed'));
    }, intervalMs);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    await this.sweeping?.catch(() => undefined);
  }
}

/** Resolve a Range header against the file size (RFC 9110 §14.1.2); unsatisfiable → 416. */
export function resolveRange(spec: RangeSpec, size: number): ByteRange {
  if ('suffix' in spec) {
    if (spec.suffix === 0 || size === 0) throw rangeNotSatisfiable(size);
    return { start: Math.max(0, size - spec.suffix), end: size - 1 };
  }
  if (spec.start >= size) throw rangeNotSatisfiable(size);
  return { start: spec.start, end: Math.min(spec.end ?? size - 1, size - 1) };
}
