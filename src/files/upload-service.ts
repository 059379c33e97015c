import type { Logger } from 'pino';
import type {
  AddPartOutcome,
  Catalog,
  FileRecord,
  UploadPartRecord,
  UploadRecord,
  UploadStatus,
} from '../catalog/catalog.js';
import type { BlobMeta, BlobStore, PartAssembly, PartRef, PartStore } from '../storage/blob-store.js';
import { ChecksumMismatchError, GatewayError, badRequest, uploadBusy, uploadNotFound } from '../errors.js';
import { drain } from './drain.js';
import { isUploadId, newFileId, newPartId, newUploadId } from './ids.js';
import { type FormPart, checkFilename, fileTtlSeconds, parseExpiresAfterSeconds, parsePurpose } from './upload-form.js';

/** OpenAI: "an Upload ... expires after an hour after you create it". */
export const UPLOAD_TTL_SECONDS = 3600;
/** Parts per upload: bounds the complete request (part_ids) and the catalog rows of one upload. */
export const MAX_PARTS_PER_UPLOAD = 10_000;
/** Released uploads stay answerable this long (a retried complete still gets its file), then are forgotten. */
const RETAIN_SECONDS = 86_400;
/**
 * Unfinished store writes (S3 multipart uploads) older than this belong to a crashed process. A day,
 * not the upload's hour: a slow POST /files or a big assembly may legitimately run past an hour.
 */
const STALE_WRITE_MS = 86_400_000;
const SWEEP_BATCH = 100;

export interface CreateUploadParams {
  bytes: number;
  filename: string;
  mime_type: string;
  purpose: string;
  expires_after?: { anchor: string; seconds: number };
}

/** An upload as the API shows it: the status as of now, and the file once completed. */
export interface UploadView {
  upload: UploadRecord;
  file: FileRecord | null;
}

export interface UploadServiceOptions {
  store: BlobStore;
  catalog: Catalog;
  log: Logger;
  now: () => number;
  maxUploadBytes: number;
  maxPartBytes: number;
}

/**
 * The Uploads API: a file sent in parts, in any order and in parallel, assembled at complete.
 * State machine: pending -> completed | cancelled | expired (an hour after creation); only pending
 * uploads take parts or complete. Parts go to the store's PartStore first and are recorded in the
 * catalog after, so a row always has its bytes; everything an upload holds is released when it
 * completes, is cancelled or expires (at once, and by the sweeper should that fail or crash).
 */
export class UploadService {
  private readonly store: BlobStore;
  private readonly catalog: Catalog;
  private readonly log: Logger;
  private readonly nowMs: () => number;
  private readonly maxUploadBytes: number;
  private readonly maxPartBytes: number;
  /** Per upload, the exclusive call running or last queued in this process (exclusively()). */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(opts: UploadServiceOptions) {
    this.store = opts.store;
    this.catalog = opts.catalog;
    this.log = opts.log;
    this.nowMs = opts.now;
    this.maxUploadBytes = opts.maxUploadBytes;
    this.maxPartBytes = opts.maxPartBytes;
  }

  private nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }

  private get parts(): PartStore {
    if (!this.store.parts) {
      throw new GatewayError(
        501,
        'invalid_request_error',
        'not_supported',
        `The ${this.store.kind} store cannot hold upload parts.`,
      );
    }
    return this.store.parts;
  }

  async create(tenant: string, params: CreateUploadParams): Promise<UploadView> {
    if (params.bytes > this.maxUploadBytes) {
      throw badRequest(
        'upload_too_large',
        `bytes: ${params.bytes} is more than the ${this.maxUploadBytes} bytes an upload may hold.`,
        'bytes',
      );
    }
    const purpose = parsePurpose(params.purpose);
    const requestedTtl =
      params.expires_after && parseExpiresAfterSeconds(params.expires_after.anchor, params.expires_after.seconds);
    const createdAt = this.nowSeconds();
    const upload: UploadRecord = {
      id: newUploadId(),
      tenant,
      filename: checkFilename(params.filename, 'filename'),
      purpose,
      bytes: params.bytes,
      mimeType: params.mime_type,
      createdAt,
      expiresAt: createdAt + UPLOAD_TTL_SECONDS,
      fileTtlSeconds: fileTtlSeconds(purpose, requestedTtl),
      status: 'pending',
      fileId: null,
    };
    const assembly = await this.store.parts?.assembly?.openAssembly(upload.id, upload.bytes, this.maxPartBytes);
    if (assembly !== undefined) upload.assembly = assembly;
    try {
      await this.catalog.insertUpload(upload);
    } catch (err) {
      if (assembly !== undefined) await this.discard(upload.id, assembly);
      throw err;
    }
    return { upload, file: null };
  }

  /** The store's assembly when the upload's parts go into one (an upload opened on another store has none here). */
  private assemblyOf(upload: UploadRecord): { parts: PartAssembly; handle: string } | undefined {
    const parts = this.store.parts?.assembly;
    return parts && upload.assembly !== undefined ? { parts, handle: upload.assembly } : undefined;
  }

  /**
   * Store the form's one `data` part. Its size is limited while it streams, to the smaller of the
   * part limit and what the declared bytes leave; the catalog re-checks the total atomically, since
   * parallel parts each saw the total before the others landed.
   */
  async addPart(tenant: string, uploadId: string, form: AsyncIterable<FormPart>): Promise<UploadPartRecord> {
    const upload = this.pending(await this.get(tenant, uploadId), 'add parts to');
    const parts = this.parts;
    // Taken as the request comes, before its body: parts a client sends one after the other, even
    // several at a time, get slots in the order it sent them, the order it will list them in.
    const assembly = this.assemblyOf(upload);
    const slot = assembly && (await this.catalog.reservePartSlot(uploadId));
    let part: UploadPartRecord | undefined;
    try {
      for await (const field of form) {
        if (field.name !== 'data' || field.kind !== 'file' || part) {
          if (field.kind === 'file') field.stream.resume();
          if (part && field.name === 'data')
            throw badRequest('duplicate_field', "Only one 'data' part may be sent per request.", 'data');
          throw badRequest(
            'unexpected_field',
            `Additional properties are not allowed ('${field.name}' was unexpected)`,
            field.name,
          );
        }
        const stored = (await this.catalog.uploadParts(uploadId)).reduce((n, p) => n + p.bytes, 0);
        const left = upload.bytes - stored;
        const max = Math.min(this.maxPartBytes, left);
        const tooLarge = () =>
          left < this.maxPartBytes
            ? overDeclared(upload)
            : badRequest('part_too_large', `The part is larger than ${this.maxPartBytes} bytes.`, 'data');
        part = { id: newPartId(), uploadId, bytes: 0, createdAt: this.nowSeconds() };
        const id = part.id;
        field.stream.setLimit(max, tooLarge);
        if (assembly === undefined || slot === undefined) {
          part.bytes = await parts.putPart(uploadId, id, field.stream);
        } else {
          const into = { assembly: assembly.handle, slot, maxBytes: max };
          const put = await assembly.parts.putPartInto(uploadId, id, field.stream, into);
          part.bytes = put.bytes;
          if (put.slotted) part.slot = slot;
        }
      }
      if (!part) throw badRequest('missing_field', "'data' is a required property", 'data');
      const outcome = await this.catalog.addUploadPart(part, this.nowSeconds(), MAX_PARTS_PER_UPLOAD);
      if (outcome !== 'added') throw await this.refused(uploadId, outcome);
      return part;
    } catch (err) {
      if (part) {
        const id = part.id;
        await parts
          .deleteParts(uploadId, [id])
          .catch((cleanupErr) =>
            this.log.error({ err: cleanupErr, uploadId, partId: id }, 'could not remove a refused part'),
          );
      }
      // A write cut short because the upload was cancelled meanwhile (its parts released): say so.
      if (!(err instanceof GatewayError) || err.status >= 500) {
        const now = await this.catalog.getUpload(uploadId).catch(() => undefined);
        if (now && this.statusOf(now) !== 'pending') throw notPending(uploadId, this.statusOf(now), 'add parts to');
      }
      throw err;
    }
  }

  private async refused(uploadId: string, outcome: Exclude<AddPartOutcome, 'added'>): Promise<GatewayError> {
    const upload = await this.get(undefined, uploadId);
    if (outcome === 'over_bytes') return overDeclared(upload);
    if (outcome === 'too_many_parts')
      return badRequest('too_many_parts', `An upload may have at most ${MAX_PARTS_PER_UPLOAD} parts.`, 'data');
    return notPending(uploadId, this.statusOf(upload), 'add parts to');
  }

  /**
   * Assemble the listed parts into an ordinary file: blob (with its rebuild metadata) first, then,
   * in one catalog transaction, the file row and the upload's move to completed. Completing a
   * completed upload again answers as the first time did, so a retried request is harmless.
   */
  async complete(tenant: string, uploadId: string, partIds: readonly string[], md5?: string): Promise<UploadView> {
    const upload = await this.get(tenant, uploadId);
    if (upload.status === 'completed') return this.view(upload);
    if (!this.assemblyOf(upload)) return this.assembleAndRecord(upload, partIds, md5);
    // every complete of the upload writes the one file key: one at a time
    const view = await this.exclusively(uploadId, async () => {
      const now = await this.get(tenant, uploadId);
      return now.status === 'completed' ? this.view(now) : this.assembleAndRecord(now, partIds, md5);
    });
    if (view === undefined) throw uploadBusy(uploadId);
    return view;
  }

  /**
   * Runs `fn` unless another call for the same upload runs it in another process (undefined);
   * calls in this process wait their turn.
   */
  private async exclusively<T>(uploadId: string, fn: () => Promise<T>): Promise<T | undefined> {
    const before = this.busy.get(uploadId) ?? Promise.resolve();
    const run = before.then(
      () => this.catalog.runExclusive(`upload ${uploadId}`, fn),
      () => this.catalog.runExclusive(`upload ${uploadId}`, fn),
    );
    this.busy.set(uploadId, run);
    try {
      return await run;
    } finally {
      if (this.busy.get(uploadId) === run) this.busy.delete(uploadId);
    }
  }

  private async assembleAndRecord(upload: UploadRecord, partIds: readonly string[], md5?: string): Promise<UploadView> {
    const { id: uploadId, tenant } = upload;
    this.pending(upload, 'complete');
    const ordered = await this.listedParts(upload, partIds);
    const assembly = this.assemblyOf(upload);
    const nowMs = this.nowMs();
    const createdAt = Math.floor(nowMs / 1000);
    const meta: BlobMeta = {
      tenant,
      filename: upload.filename,
      purpose: upload.purpose,
      createdAt,
      expiresAt: upload.fileTtlSeconds === null ? null : createdAt + upload.fileTtlSeconds,
      bytes: upload.bytes,
    };
    const id = assembly ? assembly.parts.assembledFileId(uploadId, createdAt) : newFileId(nowMs);
    const file: FileRecord = { id, ...meta };
    try {
      await this.parts.assemble(file.id, uploadId, ordered, meta, md5, assembly?.handle);
    } catch (err) {
      if (!(err instanceof ChecksumMismatchError)) throw err;
      throw badRequest(
        'md5_mismatch',
        `The md5 of the uploaded bytes (${err.actual}) does not match the md5 given (${err.expected}).`,
        'md5',
      );
    }
    let completed: boolean;
    try {
      completed = await this.catalog.completeUpload(uploadId, file);
    } catch (err) {
      // An assembled file stays for a retried complete to take (or the release to discard): its
      // parts are in it now.
      if (!assembly) await this.removeBlob(file.id);
      throw err;
    }
    if (!completed) {
      // cancelled, expired or (without an assembly) completed by a concurrent request meanwhile
      const now = await this.get(tenant, uploadId);
      if (!assembly) await this.removeBlob(file.id);
      else if (now.status !== 'completed') await this.discard(uploadId, assembly.handle);
      if (now.status === 'completed') return this.view(now);
      throw notPending(uploadId, this.statusOf(now), 'complete');
    }
    const done: UploadRecord = { ...upload, status: 'completed', fileId: file.id };
    await this.releaseNow(done);
    return { upload: done, file };
  }

  /** part_ids as the parts to assemble: each known, of this upload, listed once, adding up to the declared bytes. */
  private async listedParts(upload: UploadRecord, partIds: readonly string[]): Promise<PartRef[]> {
    const stored = new Map((await this.catalog.uploadParts(upload.id)).map((p) => [p.id, p]));
    const seen = new Set<string>();
    const ordered = partIds.map((id) => {
      if (seen.has(id)) throw badRequest('invalid_part_ids', `part_ids lists ${id} more than once.`, 'part_ids');
      seen.add(id);
      const part = stored.get(id);
      if (!part) throw badRequest('invalid_part_ids', `${id} is not a part of upload ${upload.id}.`, 'part_ids');
      return { id, bytes: part.bytes, ...(part.slot !== undefined && { slot: part.slot }) };
    });
    const total = ordered.reduce((n, p) => n + p.bytes, 0);
    if (total !== upload.bytes) {
      throw badRequest(
        'bytes_mismatch',
        `The number of bytes uploaded (${total}) does not match the number of bytes specified when creating the Upload (${upload.bytes}).`,
        'part_ids',
      );
    }
    return ordered;
  }

  async cancel(tenant: string, uploadId: string): Promise<UploadView> {
    const upload = await this.get(tenant, uploadId);
    if (upload.status === 'cancelled') return this.view(upload);
    this.pending(upload, 'cancel');
    if (!(await this.catalog.cancelUpload(uploadId))) {
      const now = await this.get(tenant, uploadId);
      if (now.status === 'cancelled') return this.view(now);
      throw notPending(uploadId, this.statusOf(now), 'cancel');
    }
    const cancelled: UploadRecord = { ...upload, status: 'cancelled' };
    await this.releaseNow(cancelled);
    return this.view(cancelled);
  }

  /**
   * Release what expired, cancelled and completed uploads still hold, forget long-released ones, and
   * abort store writes a crashed process left open. Returns how many uploads were released.
   */
  async sweep(): Promise<number> {
    const released = await drain(
      (limit) => this.catalog.uploadsToRelease(this.nowSeconds(), limit),
      (upload) => this.release(upload),
      SWEEP_BATCH,
    );
    await this.catalog.forgetUploads(this.nowSeconds() - RETAIN_SECONDS);
    const stale = (await this.parts.releaseStale?.(new Date(this.nowMs() - STALE_WRITE_MS))) ?? 0;
    if (stale > 0) this.log.warn({ aborted: stale }, 'aborted store writes left open by a crashed process');
    return released;
  }

  /**
   * Remove what the upload holds in the store, then its parts' rows. An assembly of an upload that
   * did not complete goes too, unless a complete holds the upload (then the next sweep does it):
   * its key is the file's, so the status is read again under the same exclusion.
   */
  private async release(upload: UploadRecord): Promise<void> {
    const assembly = this.assemblyOf(upload);
    if (assembly && upload.status !== 'completed') {
      const discarded = await this.exclusively(upload.id, async () => {
        const now = await this.catalog.getUpload(upload.id);
        if (now?.status !== 'completed') await assembly.parts.discardAssembly(upload.id, assembly.handle);
        return true;
      });
      if (!discarded) return;
    }
    await this.parts.deleteParts(upload.id);
    await this.catalog.markUploadReleased(upload.id);
  }

  /** The answer does not wait on a failed release: the sweeper retries it. */
  private async releaseNow(upload: UploadRecord): Promise<void> {
    await this.release(upload).catch((err) =>
      this.log.warn({ err, uploadId: upload.id }, 'could not release the parts of an upload yet; the sweeper will'),
    );
  }

  /** Best effort: what is left is the sweeper's (releaseStale, prune). */
  private async discard(uploadId: string, handle: string): Promise<void> {
    await this.store.parts?.assembly
      ?.discardAssembly(uploadId, handle)
      .catch((err) => this.log.warn({ err, uploadId }, 'could not discard the assembly of an upload'));
  }

  private async removeBlob(id: string): Promise<void> {
    await this.store
      .delete(id)
      .catch((err) =>
        this.log.error({ err, fileId: id }, 'could not remove the bytes of an upload that did not complete'),
      );
  }

  /** The upload as `tenant` may see it (undefined: already checked); another tenant's is not found. */
  private async get(tenant: string | undefined, uploadId: string): Promise<UploadRecord> {
    const upload = isUploadId(uploadId) ? await this.catalog.getUpload(uploadId) : undefined;
    if (!upload || (tenant !== undefined && upload.tenant !== tenant)) throw uploadNotFound(uploadId);
    return { ...upload, status: this.statusOf(upload) };
  }

  private statusOf(upload: UploadRecord): UploadStatus {
    return upload.status === 'pending' && upload.expiresAt <= this.nowSeconds() ? 'expired' : upload.status;
  }

  private pending(upload: UploadRecord, action: string): UploadRecord {
    if (upload.status !== 'pending') throw notPending(upload.id, upload.status, action);
    return upload;
  }

  private async view(upload: UploadRecord): Promise<UploadView> {
    const file = upload.fileId === null ? undefined : await this.catalog.get(upload.fileId);
    return { upload, file: file ?? null };
  }
}

const notPending = (id: string, status: UploadStatus, action: string): GatewayError =>
  badRequest('invalid_upload_status', `Cannot ${action} upload ${id}: it is ${status}, not pending.`, 'upload_id');

const overDeclared = (upload: UploadRecord): GatewayError =>
  badRequest(
    'upload_too_large',
    `The parts would add up to more than the ${upload.bytes} bytes declared for upload ${upload.id}.`,
    'data',
  );
