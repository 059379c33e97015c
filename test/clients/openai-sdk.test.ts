/**
 * The real `openai` npm package (6.x) against the gateway under /v1: what users of the official SDK
 * get, including both multipart encoders (buffered FormData with the file part first, and the
 * streamed chunked encoder used for fs.ReadStream), cursor auto-pagination and the error classes.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { BadRequestError, NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { pathOf, queryOf, recordRequests, type SeenRequest } from './wire-log.js';
import { rejectionOf } from '../helpers/promises.js';

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** What the SDK handed to fetch: for buffered uploads the body is a FormData whose key order we can read. */
interface FetchCall {
  url: string;
  method: string;
  formKeys: string[] | undefined;
  bodyKind: string;
}

function makeClient(gw: Gateway, calls: FetchCall[] = []): OpenAI {
  return new OpenAI({
    baseURL: `${gw.url}/v1`,
    apiKey: 'sk-test',
    maxRetries: 0,
    fetch: async (input, init) => {
      const body = init?.body;
      calls.push({
        url: String(input),
        method: init?.method ?? 'GET',
        formKeys: body instanceof FormData ? [...body.keys()] : undefined,
        bodyKind:
          body == null
            ? 'none'
            : body instanceof FormData
              ? 'FormData'
              : body instanceof ReadableStream
                ? 'ReadableStream'
                : typeof body,
      });
      return fetch(input, init);
    },
  });
}

describe('openai SDK (openai npm) against the gateway', () => {
  let gw: Gateway;
  let client: OpenAI;
  let tmp: string;
  const calls: FetchCall[] = [];
  let wire: ReturnType<typeof recordRequests>;
  const lastUpload = (): SeenRequest =>
    wire.seen.filter((r) => r.method === 'POST' && pathOf(r.url) === '/v1/files').at(-1)!;

  beforeAll(async () => {
    gw = await startGateway();
    wire = recordRequests(gw);
    client = makeClient(gw, calls);
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'files-gateway-openai-sdk-'));
  });
  afterAll(async () => {
    wire?.stop();
    await gw?.close();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  // Port of llamastack/llama-stack tests/integration/files/test_files.py::test_openai_client_basic_operations.
  it('LlamaStack test_openai_client_basic_operations', async () => {
    const testContent = Buffer.from('files test content');
    let uploaded: OpenAI.FileObject | undefined;
    try {
      uploaded = await client.files.create({
        file: await toFile(testContent, 'openai_test.txt'),
        purpose: 'assistants',
      });

      expect(uploaded.id.startsWith('file-')).toBe(true);
      expect(uploaded).toHaveProperty('filename');
      expect(uploaded.filename).toBe('openai_test.txt');

      let fileIds = (await client.files.list()).data.map((f) => f.id);
      expect(fileIds).toContain(uploaded.id);

      const retrieved = await client.files.retrieve(uploaded.id);
      expect(retrieved.id).toBe(uploaded.id);

      const contentResponse = await client.files.content(uploaded.id);
      expect(Buffer.from(await contentResponse.arrayBuffer()).equals(testContent)).toBe(true);

      const deleteResponse = await client.files.delete(uploaded.id);
      expect(deleteResponse.deleted).toBe(true);

      await expect(client.files.retrieve(uploaded.id)).rejects.toBeInstanceOf(NotFoundError);

      fileIds = (await client.files.list()).data.map((f) => f.id);
      expect(fileIds).not.toContain(uploaded.id);

      await expect(client.files.delete(uploaded.id)).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      if (uploaded) {
        await client.files.delete(uploaded.id).catch((err: unknown) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
      }
    }
  });

  it('buffered upload (toFile): file part first, Content-Length set, all fields stored', async () => {
    calls.length = 0;
    const data = Buffer.from('{"a":1}\n{"b":2}\n');
    const before = Math.floor(Date.now() / 1000);
    const f = await client.files.create({
      file: await toFile(data, 'train.jsonl', { type: 'application/jsonl' }),
      purpose: 'assistants',
    });
    const after = Math.floor(Date.now() / 1000);

    // The SDK built a FormData with the file before purpose: the gateway must not need purpose first.
    const post = calls.find((c) => c.method === 'POST')!;
    expect(post.bodyKind).toBe('FormData');
    expect(post.formKeys).toEqual(['file', 'purpose']);
    const seen = lastUpload();
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(Number(seen.headers['content-length'])).toBeGreaterThan(data.length);
    expect(seen.headers['transfer-encoding']).toBeUndefined();

    expect(f).toEqual({
      id: expect.stringMatching(/^file-[0-9a-f]{32}$/),
      object: 'file',
      bytes: data.length,
      created_at: expect.any(Number),
      expires_at: null,
      filename: 'train.jsonl',
      purpose: 'assistants',
      status: 'processed',
      status_details: null,
    });
    expect(f.created_at).toBeGreaterThanOrEqual(before);
    expect(f.created_at).toBeLessThanOrEqual(after);
    expect(await client.files.retrieve(f.id)).toEqual(f);
    expect(await (await client.files.content(f.id)).text()).toBe(data.toString());
  });

  it('streamed upload (fs.createReadStream): chunked multipart with no Content-Length', async () => {
    calls.length = 0;
    const file = path.join(tmp, 'streamed.bin');
    await fsp.writeFile(file, ALL_BYTES);
    const f = await client.files.create({ file: fs.createReadStream(file), purpose: 'user_data' });

    expect(calls.find((c) => c.method === 'POST')!.bodyKind).toBe('ReadableStream');
    const seen = lastUpload();
    expect(seen.headers['transfer-encoding']).toBe('chunked');
    expect(seen.headers['content-length']).toBeUndefined();
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=openai-/);

    expect(f).toMatchObject({
      filename: 'streamed.bin',
      bytes: 256,
      purpose: 'user_data',
      expires_at: null,
      status: 'processed',
    });
    const res = await client.files.content(f.id);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await res.arrayBuffer()).equals(ALL_BYTES)).toBe(true);
  });

  it('streams a 5 MiB file through fs.createReadStream and back unchanged', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const file = path.join(tmp, 'big.bin');
    await fsp.writeFile(file, data);
    const f = await client.files.create({
      file: fs.createReadStream(file, { highWaterMark: 64 * 1024 }),
      purpose: 'batch',
    });
    expect(lastUpload().headers['transfer-encoding']).toBe('chunked');
    expect(f.bytes).toBe(data.length);
    const got = Buffer.from(await (await client.files.content(f.id)).arrayBuffer());
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('files.content returns the exact bytes of a binary file (all 256 byte values), asking for application/binary', async () => {
    const data = Buffer.concat([
      ALL_BYTES,
      Buffer.from('\r\n--boundary-lookalike--\r\n'),
      Buffer.from(ALL_BYTES).reverse(),
    ]);
    const f = await client.files.create({ file: await toFile(data, 'all-bytes.bin'), purpose: 'assistants' });
    expect(f.bytes).toBe(data.length);
    wire.clear();
    const res = await client.files.content(f.id);
    expect(wire.seen).toHaveLength(1);
    expect(wire.seen[0]!.headers.accept).toBe('application/binary');
    expect(res.headers.get('content-length')).toBe(String(data.length));
    const got = Buffer.from(await res.arrayBuffer());
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
  });

  it.each(['assistants', 'batch', 'user_data'] as const)(
    'purpose %s is stored and listed, with its default expiry',
    async (purpose) => {
      const f = await client.files.create({
        file: await toFile(Buffer.from(`for ${purpose}`), `${purpose}.jsonl`),
        purpose,
      });
      expect(f.purpose).toBe(purpose);
      // OpenAI's default policy: batch files expire after 30 days, the others persist until deleted.
      expect(f.expires_at).toBe(purpose === 'batch' ? f.created_at + 2_592_000 : null);
      expect((await client.files.retrieve(f.id)).purpose).toBe(purpose);
    },
  );

  it('expires_after {anchor: created_at, seconds: 4545} sets expires_at = created_at + 4545, for both encoders', async () => {
    const streamed = path.join(tmp, 'expiring.txt');
    await fsp.writeFile(streamed, 'expires_after test');
    const uploads = [
      await client.files.create({
        file: await toFile(Buffer.from('expires_after test'), 'expires_after.txt'),
        purpose: 'assistants',
        expires_after: { anchor: 'created_at', seconds: 4545 },
      }),
      await client.files.create({
        file: fs.createReadStream(streamed),
        purpose: 'batch',
        expires_after: { anchor: 'created_at', seconds: 4545 },
      }),
    ];
    for (const f of uploads) {
      expect(f.expires_at).toBe(f.created_at + 4545);
      expect((await client.files.retrieve(f.id)).expires_at).toBe(f.created_at + 4545);
      expect((await client.files.list()).data.map((x) => x.id)).toContain(f.id);
    }
  });

  it('delete answers {id, object, deleted}; then retrieve, content and a second delete are NotFoundError', async () => {
    const f = await client.files.create({ file: await toFile(Buffer.from('bye'), 'bye.txt'), purpose: 'assistants' });
    expect(await client.files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });

    for (const call of [
      () => client.files.retrieve(f.id),
      () => client.files.content(f.id),
      () => client.files.delete(f.id),
    ]) {
      const err = await rejectionOf(call());
      expect(err).toBeInstanceOf(NotFoundError);
      const nf = err as NotFoundError;
      expect(nf.status).toBe(404);
      expect(nf.message).toContain('not found');
      expect(nf.message).toContain(f.id);
      expect(nf.type).toBe('invalid_request_error');
      // The gateway's x-request-id reaches the SDK's error object.
      expect(nf.requestID).toMatch(/\S/);
    }
    expect((await client.files.list()).data.map((x) => x.id)).not.toContain(f.id);
  });

  it('lists with a purpose filter', async () => {
    const batch = await client.files.create({
      file: await toFile(Buffer.from('{}'), 'only-batch.jsonl'),
      purpose: 'batch',
    });
    const other = await client.files.create({
      file: await toFile(Buffer.from('{}'), 'not-batch.jsonl'),
      purpose: 'user_data',
    });
    const listed = await client.files.list({ purpose: 'batch' });
    expect(listed.data.length).toBeGreaterThan(0);
    expect(listed.data.every((f) => f.purpose === 'batch')).toBe(true);
    expect(listed.data.map((f) => f.id)).toContain(batch.id);
    expect(listed.data.map((f) => f.id)).not.toContain(other.id);
    const userData = (await client.files.list({ purpose: 'user_data' })).data.map((f) => f.id);
    expect(userData).toContain(other.id);
    expect(userData).not.toContain(batch.id);
  });

  it('waitForProcessing resolves at once: files are processed when the upload returns', async () => {
    const f = await client.files.create({
      file: await toFile(Buffer.from('ready'), 'ready.txt'),
      purpose: 'assistants',
    });
    const started = Date.now();
    const done = await client.files.waitForProcessing(f.id, { pollInterval: 5000, maxWait: 10_000 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(done.status).toBe('processed');
    expect(done.id).toBe(f.id);
  });

  it('a bad purpose is a BadRequestError naming the purpose param', async () => {
    const err = await rejectionOf(
      client.files.create({
        file: await toFile(Buffer.from('x'), 'x.txt'),
        purpose: 'answers' as unknown as 'assistants',
      }),
    );
    expect(err).toBeInstanceOf(BadRequestError);
    const br = err as BadRequestError;
    expect(br.status).toBe(400);
    expect(br.param).toBe('purpose');
    expect(br.message).toContain("'answers' is not one of");
  });

  it('a non-ASCII filename round-trips through both encoders', async () => {
    const name = 'résumé 📄.txt';
    const buffered = await client.files.create({ file: await toFile(Buffer.from('cv'), name), purpose: 'assistants' });
    expect(buffered.filename).toBe(name);
    expect((await client.files.retrieve(buffered.id)).filename).toBe(name);

    const onDisk = path.join(tmp, name);
    await fsp.writeFile(onDisk, 'cv on disk');
    const streamed = await client.files.create({ file: fs.createReadStream(onDisk), purpose: 'user_data' });
    expect((await client.files.retrieve(streamed.id)).filename).toBe(name);

    const res = await client.files.content(streamed.id);
    const disposition = res.headers.get('content-disposition')!;
    expect(decodeURIComponent(disposition.split("filename*=UTF-8''")[1]!)).toBe(name);
    expect(await res.text()).toBe('cv on disk');
  });

  describe('auto-pagination over 30 files (own gateway, nothing else stored)', () => {
    let pgw: Gateway;
    let pclient: OpenAI;
    let pwire: ReturnType<typeof recordRequests>;
    let ids: string[] = [];

    beforeAll(async () => {
      pgw = await startGateway();
      pwire = recordRequests(pgw);
      pclient = makeClient(pgw);
      const created: OpenAI.FileObject[] = [];
      for (let i = 0; i < 30; i++) {
        created.push(
          await pclient.files.create({
            file: await toFile(Buffer.from(`file ${i}`), `page-${i}.txt`),
            purpose: 'assistants',
          }),
        );
      }
      // The gateway's documented total order: (created_at, id) ascending.
      ids = created
        .sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((f) => f.id);
      expect(new Set(ids).size).toBe(30);
    });
    afterAll(async () => {
      pwire?.stop();
      await pgw?.close();
    });

    it.each([
      ['desc', undefined],
      ['desc', 'desc'],
      ['asc', 'asc'],
    ] as const)('yields every id exactly once in %s order (order param: %s), 7 per page', async (expected, order) => {
      pwire.clear();
      const got: string[] = [];
      for await (const f of pclient.files.list(order ? { limit: 7, order } : { limit: 7 })) got.push(f.id);
      expect(got).toEqual(expected === 'asc' ? ids : [...ids].reverse());

      // 7 + 7 + 7 + 7 + 2: five requests, each continuing after the last id of the previous page.
      const lists = pwire.seen.filter((r) => r.method === 'GET' && pathOf(r.url) === '/v1/files');
      expect(lists).toHaveLength(5);
      expect(queryOf(lists[0]!.url).get('after')).toBeNull();
      for (let p = 1; p < 5; p++) {
        expect(queryOf(lists[p]!.url).get('limit')).toBe('7');
        expect(queryOf(lists[p]!.url).get('after')).toBe(got[p * 7 - 1]);
      }
    });

    it('manual paging reports has_more truthfully', async () => {
      let page = await pclient.files.list({ limit: 7, order: 'asc' });
      const hasMore: boolean[] = [page.has_more];
      while (page.hasNextPage()) {
        page = await page.getNextPage();
        hasMore.push(page.has_more);
      }
      expect(hasMore).toEqual([true, true, true, true, false]);
      expect(page.data.map((f) => f.id)).toEqual(ids.slice(28));
    });
  });
});
