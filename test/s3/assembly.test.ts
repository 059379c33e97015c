/** Upload parts sent straight into the file they become (PartAssembly), against a real S3 server. */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { PostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import { ChecksumMismatchError, GatewayError } from '../../src/errors.js';
import { ByteLimit } from '../../src/files/byte-limit.js';
import { UploadService } from '../../src/files/upload-service.js';
import type { BlobMeta, BlobStat, PartRef } from '../../src/storage/blob-store.js';
import { toUserMetadata } from '../../src/storage/s3-metadata.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { collect, deterministicBytes, piecesOf } from '../helpers/bytes.js';
import { postgresForFile } from '../helpers/catalog.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';

/** 5 MiB S3 parts (the least S3 takes) and API parts of up to 12 MiB: three part numbers a slot. */
const PART = 5 * MiB;
const MAX_PART = 12 * MiB;
const CREATED_AT = 1_750_000_000;
const postgres = postgresForFile();

const meta = (bytes: number, createdAt = CREATED_AT): BlobMeta => ({
  tenant: '',
  filename: 'big.jsonl',
  purpose: 'batch',
  createdAt,
  expiresAt: null,
  bytes,
});
const uploadId = () => `upload_${randomBytes(16).toString('hex')}`;
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const body = (b: Buffer) => Readable.from(piecesOf(b, 64 * 1024));

describe('S3 upload assembly', () => {
  let bucket: TestBucket;
  let store: S3BlobStore;
  const calls: string[] = [];
  const copies = () => calls.filter((c) => c === 'UploadPartCopyCommand').length;

  beforeAll(async () => {
    bucket = await createTestBucket({ label: 'assembly' });
    store = new S3BlobStore(bucket.config({ partSizeBytes: PART, queueSize: 4 }), {
      observeCall: (command) => calls.push(command),
    });
    await store.init();
  });
  beforeEach(() => {
    calls.length = 0;
  });
  afterAll(async () => {
    await store?.close();
    await bucket?.destroy();
  });

  const keys = async (prefix = '') =>
    (
      (await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.config().bucket, Prefix: prefix })))
        .Contents ?? []
    ).map((o) => o.Key!);
  const openUploads = async () =>
    ((await bucket.client.send(new ListMultipartUploadsCommand({ Bucket: bucket.config().bucket }))).Uploads ?? [])
      .length;

  /** Opens an assembly and sends `datas` into slots 0, 1, 2...; the parts as complete lists them. */
  async function sendParts(upload: string, datas: Buffer[]): Promise<{ handle: string; refs: PartRef[] }> {
    const total = datas.reduce((n, d) => n + d.length, 0);
    const handle = (await store.openAssembly(upload, total, MAX_PART))!;
    const refs: PartRef[] = [];
    for (const [slot, data] of datas.entries()) {
      const put = await store.putPartInto(upload, `part_${slot}`, body(data), {
        assembly: handle,
        slot,
        maxBytes: MAX_PART,
      });
      expect(put.bytes).toBe(data.length);
      refs.push({ id: `part_${slot}`, bytes: put.bytes, ...(put.slotted && { slot }) });
    }
    return { handle, refs };
  }

  const contentOf = async (id: string) => collect((await store.get(id)).stream);

  it('makes the file of parts listed as they came without copying them, the short rest of a part joined to its last full one', async () => {
    const upload = uploadId();
    // 12 MiB goes out as 5 + 7, 5 MiB + 1 as one part of 5 MiB + 1, 100 KiB is too short for a slot
    const datas = [
      await deterministicBytes(12 * MiB, 'a'),
      await deterministicBytes(PART + 1, 'b'),
      await deterministicBytes(100 * 1024, 'c'),
    ];
    const { handle, refs } = await sendParts(upload, datas);
    expect(refs.map((r) => r.slot)).toEqual([0, 1, undefined]);
    // only the short part is an object of its own
    expect(await keys(`.uploads/${upload}/`)).toEqual([`.uploads/${upload}/part_2`]);

    const whole = Buffer.concat(datas);
    const id = store.assembledFileId(upload, CREATED_AT);
    calls.length = 0;
    const stat = await store.assemble(id, upload, refs, meta(whole.length), undefined, handle);
    expect(stat.size).toBe(whole.length);
    // the short last part is copied in; the slotted ones are already there
    expect(copies()).toBe(1);
    expect((await contentOf(id)).equals(whole)).toBe(true);
    expect(id).toMatch(/^file-[0-9a-f]{12}8[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
    expect((await keys('assembled/')).length).toBe(1);
    // reindex finds the file under its id again
    const listed = new Map<string, BlobMeta>();
    for await (const { id: found, meta: m } of store.list()) listed.set(found, m);
    expect(listed.get(id)).toEqual(meta(whole.length));
    expect(await openUploads()).toBe(0);
    await store.deleteParts(upload);
    await store.delete(id);
    expect(await keys()).toEqual([]);
  });

  it('copies parts listed in another order together from the file as they came, onto the same key', async () => {
    const upload = uploadId();
    const datas = [await deterministicBytes(6 * MiB, 'd'), await deterministicBytes(7 * MiB, 'e')];
    const { handle, refs } = await sendParts(upload, datas);
    const id = store.assembledFileId(upload, CREATED_AT);
    const whole = Buffer.concat([datas[1]!, datas[0]!]);
    await store.assemble(id, upload, [refs[1]!, refs[0]!], meta(whole.length), undefined, handle);
    expect(copies()).toBeGreaterThan(0);
    expect((await contentOf(id)).equals(whole)).toBe(true);
    expect(await keys('assembled/')).toHaveLength(1);
    expect(await openUploads()).toBe(0);
    await store.delete(id);
  });

  it('finishes from the parts as they came after an md5 mismatch, and takes a file already made as it is', async () => {
    const upload = uploadId();
    const datas = [await deterministicBytes(6 * MiB, 'f'), await deterministicBytes(6 * MiB, 'g')];
    const { handle, refs } = await sendParts(upload, datas);
    const id = store.assembledFileId(upload, CREATED_AT);
    const whole = Buffer.concat(datas);
    await expect(
      store.assemble(id, upload, refs, meta(whole.length), md5(Buffer.from('other')), handle),
    ).rejects.toBeInstanceOf(ChecksumMismatchError);
    // nothing visible: the object holds the parts as they came, without metadata
    for await (const listed of store.list()) expect(listed.id).not.toBe(id);

    await store.assemble(id, upload, refs, meta(whole.length), md5(whole), handle);
    expect((await contentOf(id)).equals(whole)).toBe(true);

    // a retried complete (its first answer lost) takes the file, with the metadata it brings
    const later = store.assembledFileId(upload, CREATED_AT + 5);
    calls.length = 0;
    const stat = await store.assemble(later, upload, refs, meta(whole.length, CREATED_AT + 5), undefined, handle);
    expect(stat.size).toBe(whole.length);
    expect(copies()).toBe(0);
    const listed = new Map<string, BlobMeta>();
    for await (const { id: found, meta: m } of store.list()) listed.set(found, m);
    expect([...listed.keys()]).toEqual([later]);
    expect((await contentOf(later)).equals(whole)).toBe(true);
    await store.delete(later);
  });

  it('stores a part on its own beyond the last slot or when it might not fit in one, and refuses parts whose slot does not hold them', async () => {
    const upload = uploadId();
    const data = await deterministicBytes(6 * MiB, 'h');
    const handle = (await store.openAssembly(upload, 12 * MiB, MAX_PART))!;
    // three numbers a slot leave 3,333 slots below number 10,000
    const into = (slot: number, maxBytes = MAX_PART) => ({ assembly: handle, slot, maxBytes });
    expect(await store.putPartInto(upload, 'part_last', body(data), into(3333))).toEqual({
      bytes: data.length,
      slotted: false,
    });
    // a part limit beyond what three 5 MiB parts hold (the part limit was raised since the upload began)
    expect(await store.putPartInto(upload, 'part_big', body(data), into(1, 16 * MiB))).toEqual({
      bytes: data.length,
      slotted: false,
    });
    expect(await store.putPartInto(upload, 'part_0', body(data), into(0))).toEqual({
      bytes: data.length,
      slotted: true,
    });
    const id = store.assembledFileId(upload, CREATED_AT);
    // the catalog says part_0 is bigger than what its slot holds
    await expect(
      store.assemble(
        id,
        upload,
        [{ id: 'part_0', bytes: data.length + 1, slot: 0 }],
        meta(data.length + 1),
        undefined,
        handle,
      ),
    ).rejects.toThrow(/holds/);
    await store.discardAssembly(upload, handle);
    await store.deleteParts(upload);
    expect(await openUploads()).toBe(0);
    expect(await keys()).toEqual([]);
  });

  it('discards an assembly: its multipart upload, and the file if one was made', async () => {
    const datas = [await deterministicBytes(6 * MiB, 'i')];
    const open = uploadId();
    const sent = await sendParts(open, datas);
    expect(await openUploads()).toBe(1);
    await store.discardAssembly(open, sent.handle);
    expect(await openUploads()).toBe(0);

    const made = uploadId();
    const { handle, refs } = await sendParts(made, datas);
    await store.assemble(
      store.assembledFileId(made, CREATED_AT),
      made,
      refs,
      meta(datas[0]!.length),
      undefined,
      handle,
    );
    expect(await keys('assembled/')).toHaveLength(1);
    await store.discardAssembly(made, handle);
    expect(await keys()).toEqual([]);
  });

  it('gives the turn of a part kept back to others when its client is slow to send the next 5 MiB', async () => {
    // one part on its way to S3 at a time, for every upload of the store
    const single = new S3BlobStore(bucket.config({ partSizeBytes: PART, queueSize: 4, maxPartsInFlight: 1 }));
    const upload = uploadId();
    const data = await deterministicBytes(2 * PART + 1, 'slow');
    const handle = (await single.openAssembly(upload, data.length, MAX_PART))!;
    let resumed = false;
    const slow = Readable.from(
      (async function* () {
        // a full part and one byte more: the full part is kept back, holding the only turn
        yield data.subarray(0, PART + 1);
        await new Promise((resolve) => setTimeout(resolve, 5000));
        resumed = true;
        yield data.subarray(PART + 1);
      })(),
    );
    const sending = single.putPartInto(upload, 'part_0', slow, { assembly: handle, slot: 0, maxBytes: MAX_PART });
    await new Promise((resolve) => setTimeout(resolve, 200));
    // another upload needs a turn for its first part while the slow one waits
    const other = store.assembledFileId(uploadId(), CREATED_AT);
    await single.put(other, body(await deterministicBytes(PART + 1, 'other')));
    expect(resumed).toBe(false);
    expect(await sending).toEqual({ bytes: data.length, slotted: true });
    const id = single.assembledFileId(upload, CREATED_AT);
    await single.assemble(
      id,
      upload,
      [{ id: 'part_0', bytes: data.length, slot: 0 }],
      meta(data.length),
      undefined,
      handle,
    );
    expect((await collect((await single.get(id)).stream)).equals(data)).toBe(true);
    await single.delete(id);
    await single.delete(other);
    await single.close();
  });

  it('opens no assembly for an upload too small for any part to go into one', async () => {
    expect(await store.openAssembly(uploadId(), PART - 1, MAX_PART)).toBeUndefined();
  });

  it('does not take an object of another origin whose key reads as an assembled file id for a file', async () => {
    const key = 'file-0193a5b2c3d48abc90123456789abcde';
    await bucket.client.send(
      new PutObjectCommand({
        Bucket: bucket.config().bucket,
        Key: key,
        Body: 'x',
        Metadata: toUserMetadata(meta(1)),
      }),
    );
    for await (const listed of store.list()) expect(listed.id).not.toBe(key);
    await store.pruneLeftovers(new Date(Date.now() + 60_000));
    expect(await keys()).toContain(key);
  });

  /** An UploadService (one replica) over `catalog` and the store, whose assemble `around` wraps. */
  function replica(
    catalog: Catalog,
    around: (assemble: () => Promise<BlobStat>) => Promise<BlobStat> = (assemble) => assemble(),
  ): UploadService {
    const watched = Object.create(store) as S3BlobStore;
    watched.assemble = (...args) => around(() => store.assemble(...args));
    Object.defineProperty(watched, 'parts', { value: watched });
    return new UploadService({
      store: watched,
      catalog,
      log: pino({ level: 'silent' }),
      now: Date.now,
      maxUploadBytes: 1 << 30,
      maxPartBytes: MAX_PART,
    });
  }

  /** An upload of one 6 MiB part, sent into its assembly's first slot. */
  async function uploadOfOnePart(uploads: UploadService): Promise<{ uploadId: string; partId: string }> {
    const data = await deterministicBytes(6 * MiB, 'j');
    const { upload } = await uploads.create('', {
      bytes: data.length,
      filename: 'one.bin',
      mime_type: 'text/plain',
      purpose: 'batch',
    });
    const stream = new ByteLimit(() => undefined);
    Readable.from(piecesOf(data, 64 * 1024)).pipe(stream);
    const part = await uploads.addPart(
      '',
      upload.id,
      (async function* () {
        yield { kind: 'file' as const, name: 'data', filename: 'chunk', stream };
      })(),
    );
    expect(part.slot).toBe(0);
    return { uploadId: upload.id, partId: part.id };
  }

  it('runs the completes of one upload one at a time: they all write the one file key', async () => {
    const catalog = new SqliteCatalog(':memory:');
    await catalog.init();
    let running = 0;
    let most = 0;
    const uploads = replica(catalog, async (assemble) => {
      most = Math.max(most, ++running);
      try {
        return await assemble();
      } finally {
        running--;
      }
    });
    const { uploadId, partId } = await uploadOfOnePart(uploads);
    const views = await Promise.all(Array.from({ length: 3 }, () => uploads.complete('', uploadId, [partId])));
    expect(most).toBe(1);
    expect(new Set(views.map((v) => v.file?.id)).size).toBe(1);
    await store.delete(views[0]!.file!.id);
    await catalog.close();
  });

  it('answers 409 upload_busy, which the SDKs retry, while another replica completes the upload', async () => {
    const url = await postgres.freshDatabase();
    const catalogs = [new PostgresCatalog({ url, poolSize: 2 }), new PostgresCatalog({ url, poolSize: 2 })];
    for (const c of catalogs) await c.init();
    let assembling!: () => void;
    const started = new Promise<void>((resolve) => (assembling = resolve));
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const first = replica(catalogs[0]!, async (assemble) => {
      assembling();
      await gate;
      return assemble();
    });
    const second = replica(catalogs[1]!);
    const { uploadId, partId } = await uploadOfOnePart(first);

    const completing = first.complete('', uploadId, [partId]);
    await started;
    const busy = await second.complete('', uploadId, [partId]).catch((err: unknown) => err);
    expect(busy).toBeInstanceOf(GatewayError);
    expect(busy).toMatchObject({ status: 409, code: 'upload_busy', headers: { 'retry-after': '1' } });
    finish();
    const done = await completing;
    // the retry answers with the file the first replica made
    expect((await second.complete('', uploadId, [partId])).file).toEqual(done.file);
    await store.delete(done.file!.id);
    for (const c of catalogs) await c.close();
  });
});
