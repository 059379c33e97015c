/**
 * The Uploads API over real sockets, with the real openai SDK and raw HTTP, run once per store
 * backend. Every answer is also checked against openapi.yaml by the request helper.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import OpenAI, { BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../src/config.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { deterministicBytes, deterministicStream } from '../helpers/bytes.js';
import { startGateway, type Gateway, type GatewayOptions } from '../helpers/gateway.js';
import { multipartBody, request, type RawResponse } from '../helpers/http.js';
import { streamingDownload } from '../helpers/stream-upload.js';
import { rejectionOf } from '../helpers/promises.js';

const MiB = 1024 * 1024;
const KiB = 1024;

export interface UploadsBackend {
  name: string;
  /** A fresh S3 store with its settings, or one on the same place as `same` (a restarted gateway); undefined: fs in the data folder. */
  makeStore?: (same?: BlobStore) => { store: BlobStore; s3: S3Config };
  /** What the store still holds for uploads: part files/objects, temp files, open multipart uploads. */
  leftovers(gw: Gateway): Promise<string[]>;
  /** Leave a multipart upload open on a file key, as a gateway that crashed mid-complete would. */
  crashMidComplete?: (gw: Gateway) => Promise<void>;
  /** Size of the big round trip: 1 GiB unless the machine is too slow for it in `npm test`. */
  bigBytes: number;
}

const client = (gw: Gateway, prefix = '/v1') =>
  new OpenAI({ baseURL: `${gw.url}${prefix}`, apiKey: 'sk-test', maxRetries: 0 });

const json = (url: string, body: unknown) =>
  request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function sendPart(
  gw: Gateway,
  uploadId: string,
  data: Buffer,
  extra: Parameters<typeof multipartBody>[0] = [],
): Promise<RawResponse> {
  const { body, contentType } = multipartBody([{ name: 'data', filename: 'chunk', data }, ...extra]);
  return request(`${gw.url}/v1/uploads/${uploadId}/parts`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
}

function expectError(res: RawResponse, status: number, param?: string | null) {
  expect(res.status, res.body.toString()).toBe(status);
  const { error } = res.json();
  if (param !== undefined) expect(error.param).toBe(param);
  return error as { message: string; code: string; param: string | null };
}

const md5 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('md5')).digest('hex');
const sha256 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest('hex');

export function uploadsApiSuite(backend: UploadsBackend) {
  describe(`Uploads API over HTTP (${backend.name} store)`, () => {
    let gw: Gateway;
    let sdk: OpenAI;
    const start = (opts: GatewayOptions = {}, same?: BlobStore) => {
      const made = backend.makeStore?.(same);
      return startGateway({ ...opts, ...(made && { store: () => made.store, s3: made.s3 }) });
    };

    beforeAll(async () => {
      gw = await start();
      sdk = client(gw);
    });
    afterAll(async () => {
      await gw?.close();
    });

    const create = (bytes: number, extra: Record<string, unknown> = {}) =>
      sdk.uploads.create({
        bytes,
        filename: 'big.jsonl',
        mime_type: 'application/jsonl',
        purpose: 'batch',
        ...extra,
      } as any);

    it(`takes ${backend.bigBytes / MiB} MiB in 64 MiB parts, 4 at a time out of order, and serves it back intact`, async () => {
      const partBytes = 64 * MiB;
      const n = backend.bigBytes / partBytes;
      const upload = await create(backend.bigBytes);
      expect(upload).toMatchObject({
        object: 'upload',
        status: 'pending',
        bytes: backend.bigBytes,
        filename: 'big.jsonl',
        purpose: 'batch',
        file: null,
      });
      expect(upload.id).toMatch(/^upload_[0-9a-f]{32}$/);
      expect(upload.expires_at).toBe(upload.created_at + 3600);

      // reversed, four in flight: each part a deterministic stream of its own, never in memory
      const order = Array.from({ length: n }, (_, i) => n - 1 - i);
      const partIds = new Array<string>(n);
      for (let i = 0; i < order.length; i += 4) {
        await Promise.all(
          order.slice(i, i + 4).map(async (index) => {
            const part = await sdk.uploads.parts.create(upload.id, {
              data: deterministicStream(partBytes, `part-${index}`).stream,
            });
            expect(part).toMatchObject({ object: 'upload.part', upload_id: upload.id });
            partIds[index] = part.id;
          }),
        );
      }
      const whole = createHash('sha256');
      for (let index = 0; index < n; index++)
        for await (const chunk of deterministicStream(partBytes, `part-${index}`).stream) whole.update(chunk as Buffer);

      const done = await sdk.uploads.complete(upload.id, { part_ids: partIds });
      expect(done.status).toBe('completed');
      expect(done.file).toMatchObject({
        object: 'file',
        bytes: backend.bigBytes,
        filename: 'big.jsonl',
        purpose: 'batch',
        status: 'processed',
      });
      expect(done.file!.expires_at).toBe(done.file!.created_at + 30 * 86_400);
      const download = await streamingDownload(`${gw.url}/v1/files/${done.file!.id}/content`);
      expect(download).toEqual({ status: 200, bytes: backend.bigBytes, sha256: whole.digest('hex') });
      expect((await sdk.files.retrieve(done.file!.id)).bytes).toBe(backend.bigBytes);
      expect(await backend.leftovers(gw)).toEqual([]);
      await sdk.files.delete(done.file!.id);
    }, 300_000);

    it('assembles small and mixed parts (1 KiB, 3 MiB between 6 MiB ones) in the listed order, md5 checked', async () => {
      const sizes = [6 * MiB, 3 * MiB, 6 * MiB, KiB, 6 * MiB, 3 * MiB, KiB];
      const parts = await Promise.all(sizes.map((size, i) => deterministicBytes(size, `mixed-${i}`)));
      const total = sizes.reduce((a, b) => a + b, 0);
      const upload = await create(total, { purpose: 'assistants', filename: 'mixed.bin' });
      const ids = new Array<string>(parts.length);
      await Promise.all(parts.map(async (data, i) => (ids[i] = (await sendPart(gw, upload.id, data)).json().id)));
      const done = await sdk.uploads.complete(upload.id, { part_ids: ids, md5: md5(...parts) });
      expect(done.file).toMatchObject({ bytes: total, expires_at: null, filename: 'mixed.bin' });
      const download = await streamingDownload(`${gw.url}/v1/files/${done.file!.id}/content`);
      expect(download.sha256).toBe(sha256(...parts));
      expect(await backend.leftovers(gw)).toEqual([]);
    }, 120_000);

    it('assembles one small file, an empty file, and answers a second complete like the first', async () => {
      const small = await create(5, { purpose: 'user_data' });
      const a = await sdk.uploads.parts.create(small.id, { data: Readable.from([Buffer.from('hel')]) });
      const b = await sdk.uploads.parts.create(small.id, { data: Readable.from([Buffer.from('lo')]) });
      const done = await sdk.uploads.complete(small.id, { part_ids: [a.id, b.id], md5: md5(Buffer.from('hello')) });
      expect(await sdk.files.content(done.file!.id).then((r) => r.text())).toBe('hello');
      expect(await sdk.uploads.complete(small.id, { part_ids: [a.id, b.id] })).toEqual(done);

      const empty = await create(0);
      const none = await sdk.uploads.complete(empty.id, { part_ids: [] });
      expect(none.file?.bytes).toBe(0);
      expect((await request(`${gw.url}/v1/files/${none.file!.id}/content`)).body.length).toBe(0);
    });

    it('refuses a complete whose parts do not add up, or with a wrong md5, and stays pending', async () => {
      const data = [Buffer.from('abc'), Buffer.from('defg')];
      const upload = await create(7);
      const ids = [];
      for (const d of data) ids.push((await sendPart(gw, upload.id, d)).json().id);
      const url = `${gw.url}/v1/uploads/${upload.id}/complete`;
      const short = expectError(await json(url, { part_ids: [ids[0]] }), 400, 'part_ids');
      expect(short.message).toContain('(3)');
      expect(short.message).toContain('(7)');
      const wrong = expectError(await json(url, { part_ids: ids, md5: md5(Buffer.from('abcdefh')) }), 400, 'md5');
      expect(wrong.message).toContain(md5(Buffer.from('abcdefg')));
      expectError(await json(url, { part_ids: ids, md5: 'not-hex' }), 400, 'md5');
      expect((await sdk.files.list()).data.filter((f) => f.bytes === 7)).toEqual([]);
      // still pending: the right order and md5 complete it
      const done = (await json(url, { part_ids: ids, md5: md5(...data) })).json();
      expect(done.status).toBe('completed');
      expect((await request(`${gw.url}/v1/files/${done.file.id}/content`)).body.toString()).toBe('abcdefg');
      expect(await backend.leftovers(gw)).toEqual([]);
    });

    it('refuses unknown, duplicate and foreign part ids with param part_ids', async () => {
      const mine = await create(2);
      const other = await create(1);
      const a = (await sendPart(gw, mine.id, Buffer.from('a'))).json().id;
      const b = (await sendPart(gw, mine.id, Buffer.from('b'))).json().id;
      const foreign = (await sendPart(gw, other.id, Buffer.from('x'))).json().id;
      const url = `${gw.url}/v1/uploads/${mine.id}/complete`;
      expect(
        expectError(await json(url, { part_ids: [a, 'part_00000000000000000000000000000000'] }), 400, 'part_ids')
          .message,
      ).toContain('not a part of');
      expect(expectError(await json(url, { part_ids: [a, a] }), 400, 'part_ids').message).toContain('more than once');
      expectError(await json(url, { part_ids: [a, foreign] }), 400, 'part_ids');
      expectError(await json(url, { part_ids: [a, b], extra: 1 }), 400);
      expectError(await json(url, {}), 400, 'part_ids');
      expect((await json(url, { part_ids: [b, a] })).json().status).toBe('completed');
      await sdk.uploads.cancel(other.id);
      expect(await backend.leftovers(gw)).toEqual([]);
    });

    it('refuses an upload over the limit, bad fields, and unknown uploads', async () => {
      const small = await start({ maxUploadBytes: 1000, maxPartBytes: 100 });
      try {
        const url = `${small.url}/v1/uploads`;
        const ok = { bytes: 1000, filename: 'f.txt', mime_type: 'text/plain', purpose: 'assistants' };
        expect((await json(url, ok)).status).toBe(200);
        expectError(await json(url, { ...ok, bytes: 1001 }), 400, 'bytes');
        expectError(await json(url, { ...ok, bytes: -1 }), 400, 'bytes');
        expectError(await json(url, { ...ok, purpose: 'answers' }), 400, 'purpose');
        expectError(await json(url, { ...ok, mime_type: undefined }), 400, 'mime_type');
        expectError(await json(url, { ...ok, surprise: true }), 400);
        expectError(await json(url, { ...ok, filename: 'a\nb' }), 400, 'filename');
        expectError(
          await json(url, { ...ok, expires_after: { anchor: 'created_at', seconds: 10 } }),
          400,
          'expires_after.seconds',
        );
        for (const path of ['parts', 'complete', 'cancel']) {
          expectError(
            await json(`${small.url}/v1/uploads/upload_0123456789abcdef0123456789abcdef/${path}`, { part_ids: [] }),
            404,
            'upload_id',
          );
          expectError(await json(`${small.url}/v1/uploads/nope/${path}`, { part_ids: [] }), 404, 'upload_id');
        }
        expect(
          await rejectionOf(client(small).uploads.cancel('upload_0123456789abcdef0123456789abcdef')),
        ).toBeInstanceOf(NotFoundError);
      } finally {
        await small.close();
      }
    });

    it('stops a part over the part limit or the declared bytes while it streams, and keeps nothing of it', async () => {
      const small = await start({ maxPartBytes: MiB });
      try {
        const upload = (
          await json(`${small.url}/v1/uploads`, { bytes: 3 * MiB, filename: 'f', mime_type: 'x/y', purpose: 'vision' })
        ).json();
        const tooBig = expectError(await sendPart(small, upload.id, await deterministicBytes(2 * MiB)), 400, 'data');
        expect(tooBig.code).toBe('part_too_large');
        expect(await backend.leftovers(small)).toEqual([]);
        expectError(
          await sendPart(small, upload.id, Buffer.from('x'), [{ name: 'purpose', value: 'batch' }]),
          400,
          'purpose',
        );
        expectError(
          await sendPart(small, upload.id, Buffer.from('x'), [
            { name: 'data', filename: 'again', data: Buffer.from('y') },
          ]),
          400,
          'data',
        );
        const noData = multipartBody([{ name: 'other', value: 'x' }]);
        expectError(
          await request(`${small.url}/v1/uploads/${upload.id}/parts`, {
            method: 'POST',
            headers: { 'content-type': noData.contentType },
            body: noData.body,
          }),
          400,
        );
        expect(await backend.leftovers(small)).toEqual([]);
        for (let i = 0; i < 3; i++)
          expect((await sendPart(small, upload.id, await deterministicBytes(MiB, `p${i}`))).status).toBe(200);
        expect(expectError(await sendPart(small, upload.id, Buffer.from('one byte too many')), 400, 'data').code).toBe(
          'upload_too_large',
        );
        await client(small).uploads.cancel(upload.id);
        expect(await backend.leftovers(small)).toEqual([]);
      } finally {
        await small.close();
      }
    });

    it('cancels with the SDK (no body) and then refuses parts, complete and cancel-after-complete', async () => {
      const upload = await create(4);
      const part = await sdk.uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('ab')]) });
      const cancelled = await sdk.uploads.cancel(upload.id);
      expect(cancelled).toMatchObject({ id: upload.id, status: 'cancelled', file: null });
      expect((await sdk.uploads.cancel(upload.id)).status).toBe('cancelled');
      expect(await backend.leftovers(gw)).toEqual([]);
      const err = await rejectionOf(sdk.uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('cd')]) }));
      expect(err).toBeInstanceOf(BadRequestError);
      expect(err.message).toContain('cancelled');
      expect(await rejectionOf(sdk.uploads.complete(upload.id, { part_ids: [part.id] }))).toBeInstanceOf(
        BadRequestError,
      );

      const done = await create(1);
      const only = await sdk.uploads.parts.create(done.id, { data: Readable.from([Buffer.from('z')]) });
      await sdk.uploads.complete(done.id, { part_ids: [only.id] });
      expect((await rejectionOf(sdk.uploads.cancel(done.id))).message).toContain('completed');
      expect(
        (await rejectionOf(sdk.uploads.parts.create(done.id, { data: Readable.from([Buffer.from('z')]) }))).message,
      ).toContain('completed');
      expect(await backend.leftovers(gw)).toEqual([]);
    });

    it('serves the same operations under /v1/openai/v1', async () => {
      const other = client(gw, '/v1/openai/v1');
      const upload = await other.uploads.create({
        bytes: 2,
        filename: 'x.txt',
        mime_type: 'text/plain',
        purpose: 'assistants',
      });
      const part = await other.uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('ok')]) });
      expect((await other.uploads.complete(upload.id, { part_ids: [part.id] })).file?.bytes).toBe(2);
    });

    it('expires an upload after an hour: parts and complete refused, the sweeper releases what it held', async () => {
      let nowMs = Date.now();
      const ex = await start({ now: () => nowMs });
      try {
        const sdkEx = client(ex);
        const upload = await sdkEx.uploads.create({
          bytes: 12 * MiB,
          filename: 'e',
          mime_type: 'x/y',
          purpose: 'assistants',
        });
        const part = await sdkEx.uploads.parts.create(upload.id, { data: deterministicStream(6 * MiB).stream });
        expect((await backend.leftovers(ex)).length).toBeGreaterThan(0);
        await backend.crashMidComplete?.(ex);

        nowMs += 3601 * 1000;
        expect(
          (await rejectionOf(sdkEx.uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('x')]) })))
            .message,
        ).toContain('expired');
        expect((await rejectionOf(sdkEx.uploads.complete(upload.id, { part_ids: [part.id] }))).message).toContain(
          'expired',
        );
        expect((await rejectionOf(sdkEx.uploads.cancel(upload.id))).message).toContain('expired');
        expect(await ex.files.sweep()).toEqual({ files: 0, uploads: 1 });
        // a day later, whatever a crashed process left open is aborted too
        nowMs += 86_401 * 1000;
        expect(await ex.files.sweep()).toEqual({ files: 0, uploads: 0 });
        expect(await backend.leftovers(ex)).toEqual([]);
        // and the upload itself is forgotten
        expect(await rejectionOf(sdkEx.uploads.cancel(upload.id))).toBeInstanceOf(NotFoundError);
      } finally {
        await ex.close();
      }
    });

    it('keeps an upload across a gateway restart between parts', async () => {
      const first = await start();
      const dataDir = first.dataDir;
      const upload = await client(first).uploads.create({
        bytes: 6,
        filename: 'r.txt',
        mime_type: 'text/plain',
        purpose: 'assistants',
      });
      const a = await client(first).uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('before')]) });
      await first.app.close();
      await first.files.stop();
      await first.catalog.close();
      await first.store.close();
      const second = await start({ dataDir }, first.store);
      try {
        const b = await client(second).uploads.parts.create(upload.id, { data: Readable.from([Buffer.from('')]) });
        const done = await client(second).uploads.complete(upload.id, { part_ids: [a.id, b.id] });
        expect((await request(`${second.url}/v1/files/${done.file!.id}/content`)).body.toString()).toBe('before');
        expect(await backend.leftovers(second)).toEqual([]);
      } finally {
        await second.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });
}
