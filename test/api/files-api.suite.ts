import net from 'node:net';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Config } from '../../src/config.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { filesUnder, startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, multipartBody, request, upload } from '../helpers/http.js';
import { eventually } from '../helpers/wait.js';
import { listRecords } from '../helpers/catalog.js';

const PREFIXES = ['/v1', '/v1/openai/v1', '/alpha'];
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function expectEnvelope(res: { status: number; headers: Record<string, unknown>; json(): any }, status: number) {
  expect(res.status).toBe(status);
  expect(String(res.headers['content-type'])).toMatch(/^application\/json/);
  const { error } = res.json();
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof error.message).toBe('string');
  return error as { message: string; type: string; param: string | null; code: string | null };
}

export interface Backend {
  name: string;
  /** A fresh, empty S3 store for one gateway, with its settings; undefined: the fs default in the gateway's data folder. */
  makeStore?: () => { store: BlobStore; s3: S3Config };
  /**
   * Writes in progress that a failed upload must not leave behind (temp files, S3 multipart
   * uploads); undefined when the backend cannot tell (the local fake S3 server).
   */
  inProgress(gw: Gateway): Promise<number | undefined>;
}

export const fsBackend: Backend = {
  name: 'fs',
  inProgress: async (gw) => (await filesUnder(path.join(gw.dataDir, 'tmp'))).length,
};

/** The HTTP behaviour of the Files API over real sockets, run once per store backend. */
export function filesApiSuite(backend: Backend) {
  describe(`Files API over HTTP (${backend.name} store)`, () => {
    let gw: Gateway;
    const start = (opts: Parameters<typeof startGateway>[0] = {}) => {
      const made = backend.makeStore?.();
      return startGateway({ ...opts, ...(made && { store: () => made.store, s3: made.s3 }) });
    };

    beforeAll(async () => {
      gw = await start();
    });
    afterAll(async () => {
      await gw?.close();
    });

    describe.each(PREFIXES)('under %s', (prefix) => {
      it('uploads, retrieves, lists, downloads and deletes a file', async () => {
        const res = await upload(
          gw.url,
          [{ name: 'purpose', value: 'assistants' }, filePart('hello files', 'hello.txt')],
          prefix,
        );
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        const file = res.json();
        expect(file).toMatchObject({
          object: 'file',
          bytes: 11,
          filename: 'hello.txt',
          purpose: 'assistants',
          status: 'processed',
          expires_at: null,
        });
        expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
        expect(Math.abs(file.created_at - Date.now() / 1000)).toBeLessThan(5);

        expect((await request(`${gw.url}${prefix}/files/${file.id}`)).json()).toEqual(file);
        const listed = (await request(`${gw.url}${prefix}/files?order=desc`)).json();
        expect(listed.object).toBe('list');
        expect(listed.data.map((f: any) => f.id)).toContain(file.id);

        const content = await request(`${gw.url}${prefix}/files/${file.id}/content`);
        expect(content.status).toBe(200);
        expect(content.headers['content-type']).toBe('application/octet-stream');
        expect(content.headers['content-length']).toBe('11');
        expect(content.headers['content-disposition']).toBe(
          `attachment; filename="hello.txt"; filename*=UTF-8''hello.txt`,
        );
        expect(content.headers.etag).toBeTruthy();
        expect(content.body.toString()).toBe('hello files');

        const del = await request(`${gw.url}${prefix}/files/${file.id}`, { method: 'DELETE' });
        expect(del.status).toBe(200);
        expect(del.json()).toEqual({ id: file.id, object: 'file', deleted: true });
        expect(expectEnvelope(await request(`${gw.url}${prefix}/files/${file.id}`), 404).message).toContain(
          'not found',
        );
      });
    });

    it('serves GET /alpha/files/list as the list operation', async () => {
      const { json } = await upload(gw.url, [filePart('x'), { name: 'purpose', value: 'user_data' }]);
      const id = json().id;
      const res = await request(`${gw.url}/alpha/files/list?purpose=user_data`);
      expect(res.status).toBe(200);
      expect(res.json().data.map((f: any) => f.id)).toContain(id);
      // ...and only there: under /v1 "list" is not a file id.
      expect((await request(`${gw.url}/v1/files/list`)).status).toBe(404);
    });

    it('accepts the file before purpose (openai-node order) and after it (python order)', async () => {
      const fileFirst = await upload(gw.url, [filePart('first'), { name: 'purpose', value: 'batch' }]);
      const purposeFirst = await upload(gw.url, [{ name: 'purpose', value: 'batch' }, filePart('second')]);
      for (const [res, text] of [
        [fileFirst, 'first'],
        [purposeFirst, 'second'],
      ] as const) {
        expect(res.status).toBe(200);
        const f = res.json();
        expect(f.purpose).toBe('batch');
        // Batch files expire after 30 days unless told otherwise.
        expect(f.expires_at).toBe(f.created_at + 2_592_000);
        expect((await request(`${gw.url}/v1/files/${f.id}/content`)).body.toString()).toBe(text);
      }
    });

    it('takes a chunked upload with no Content-Length', async () => {
      const { body, contentType } = multipartBody([
        filePart(ALL_BYTES, 'chunked.bin'),
        { name: 'purpose', value: 'assistants' },
      ]);
      const chunks = [];
      for (let i = 0; i < body.length; i += 37) chunks.push(body.subarray(i, i + 37));
      const res = await request(`${gw.url}/v1/files`, {
        method: 'POST',
        headers: { 'content-type': contentType, 'transfer-encoding': 'chunked' },
        chunks,
      });
      expect(res.status).toBe(200);
      expect(res.json().bytes).toBe(256);
      expect((await request(`${gw.url}/v1/files/${res.json().id}/content`)).body.equals(ALL_BYTES)).toBe(true);
    });

    it('round-trips 0-byte files and every byte value', async () => {
      for (const data of [
        Buffer.alloc(0),
        ALL_BYTES,
        Buffer.concat([ALL_BYTES, Buffer.from('\r\n--not-a-boundary\r\n'), ALL_BYTES]),
      ]) {
        const res = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart(data, 'data.bin')]);
        expect(res.status).toBe(200);
        expect(res.json().bytes).toBe(data.length);
        const content = await request(`${gw.url}/v1/files/${res.json().id}/content`);
        expect(content.headers['content-length']).toBe(String(data.length));
        expect(content.body.equals(data)).toBe(true);
      }
    });

    it('keeps UTF-8 filenames exactly and encodes them safely in Content-Disposition', async () => {
      const name = 'résumé 履歴書 🚀 "quoted"; a=b.txt';
      const res = await upload(gw.url, [
        { name: 'purpose', value: 'assistants' },
        // Clients send raw UTF-8 and escape quotes as %22 (openai-node, llama-stack-client, curl):
        // the stored name is what the user meant, with the quotes.
        {
          name: 'file',
          data: Buffer.from('utf8'),
          rawDisposition: `form-data; name="file"; filename="${name.replaceAll('"', '%22')}"`,
        },
      ]);
      expect(res.status).toBe(200);
      const f = res.json();
      expect(f.filename).toBe(name);
      const content = await request(`${gw.url}/v1/files/${f.id}/content`);
      const disposition = String(content.headers['content-disposition']);
      expect(disposition).toMatch(/^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''[A-Za-z0-9%._~!-]+$/);
      const encoded = disposition.split("filename*=UTF-8''")[1]!;
      expect(decodeURIComponent(encoded)).toBe(f.filename);
      expect((await request(`${gw.url}/v1/files/${f.id}`)).json().filename).toBe(f.filename);
    });

    it('refuses a filename that tries to inject headers, and leaves nothing behind', async () => {
      const before = (await listRecords(gw.catalog, { tenant: '', order: 'asc', limit: 100_000, now: 0 })).length;
      const res = await upload(gw.url, [
        { name: 'purpose', value: 'assistants' },
        {
          name: 'file',
          data: Buffer.from('x'),
          rawDisposition: `form-data; name="file"; filename*=utf-8''evil%0D%0AX-Injected%3A%201.txt`,
        },
      ]);
      const err = expectEnvelope(res, 400);
      expect(err.param).toBe('file');
      expect(res.headers['x-injected']).toBeUndefined();
      expect((await listRecords(gw.catalog, { tenant: '', order: 'asc', limit: 100_000, now: 0 })).length).toBe(before);
    });

    it('answers HEAD, single ranges (206), suffix ranges and unsatisfiable ranges (416)', async () => {
      const data = Buffer.from('0123456789abcdef');
      const id = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart(data, 'r.bin')])).json().id;
      const url = `${gw.url}/v1/files/${id}/content`;

      const head = await request(url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('16');
      expect(head.headers['accept-ranges']).toBe('bytes');
      expect(head.body.length).toBe(0);

      const mid = await request(url, { headers: { range: 'bytes=2-5' } });
      expect(mid.status).toBe(206);
      expect(mid.headers['content-range']).toBe('bytes 2-5/16');
      expect(mid.body.toString()).toBe('2345');
      const open = await request(url, { headers: { range: 'bytes=10-' } });
      expect([open.status, open.body.toString()]).toEqual([206, 'abcdef']);
      const suffix = await request(url, { headers: { range: 'bytes=-3' } });
      expect([suffix.status, suffix.body.toString()]).toEqual([206, 'def']);
      const clamped = await request(url, { headers: { range: 'bytes=14-99' } });
      expect([clamped.status, clamped.headers['content-range'], clamped.body.toString()]).toEqual([
        206,
        'bytes 14-15/16',
        'ef',
      ]);

      const unsatisfiable = await request(url, { headers: { range: 'bytes=16-20' } });
      expectEnvelope(unsatisfiable, 416);
      expect(unsatisfiable.headers['content-range']).toBe('bytes */16');
      // Several ranges: the whole file, which RFC 9110 allows.
      const multi = await request(url, { headers: { range: 'bytes=0-1,4-5' } });
      expect([multi.status, multi.body.toString()]).toEqual([200, data.toString()]);

      const etag = String(mid.headers.etag);
      // HEAD shows what GET would send, from the store's own metadata.
      expect(head.headers.etag).toBe(etag);
      expect(head.headers['content-disposition']).toBe(mid.headers['content-disposition']);
      const notModified = await request(url, { headers: { 'if-none-match': etag } });
      expect(notModified.status).toBe(304);
      expect(notModified.body.length).toBe(0);
    });

    it('pages through 100 files created in the same second with limit 7, in both orders', async () => {
      const fixedMs = Date.UTC(2030, 0, 1);
      const paged = await start({ now: () => fixedMs });
      try {
        const ids = new Set<string>();
        for (let i = 0; i < 100; i++) {
          const res = await upload(paged.url, [
            { name: 'purpose', value: 'assistants' },
            filePart(`f${i}`, `f${i}.txt`),
          ]);
          expect(res.json().created_at).toBe(fixedMs / 1000);
          ids.add(res.json().id);
        }
        for (const order of ['asc', 'desc']) {
          const seen: string[] = [];
          let after: string | undefined;
          let pages = 0;
          for (;;) {
            const q = `limit=7&order=${order}${after ? `&after=${after}` : ''}`;
            const page = (await request(`${paged.url}/v1/files?${q}`)).json();
            pages++;
            seen.push(...page.data.map((f: any) => f.id));
            expect(page.first_id).toBe(page.data[0]?.id ?? '');
            expect(page.last_id).toBe(page.data.at(-1)?.id ?? '');
            if (!page.has_more) break;
            expect(page.data.length).toBe(7);
            after = page.last_id;
          }
          expect(pages).toBe(15);
          expect(seen.length).toBe(100);
          expect(new Set(seen)).toEqual(ids);
          const sorted = [...seen].sort();
          expect(seen).toEqual(order === 'asc' ? sorted : sorted.reverse());
        }
      } finally {
        await paged.close();
      }
    });

    it('continues a page after its cursor file was deleted', async () => {
      const pg = await start();
      try {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++)
          ids.push((await upload(pg.url, [{ name: 'purpose', value: 'assistants' }, filePart(`${i}`)])).json().id);
        const first = (await request(`${pg.url}/v1/files?limit=2&order=asc`)).json();
        expect(first.data.map((f: any) => f.id)).toEqual(ids.slice(0, 2));
        for (const f of first.data) await request(`${pg.url}/v1/files/${f.id}`, { method: 'DELETE' });
        const next = (await request(`${pg.url}/v1/files?limit=2&order=asc&after=${first.last_id}`)).json();
        expect(next.data.map((f: any) => f.id)).toEqual(ids.slice(2, 4));
        expect(next.has_more).toBe(true);
      } finally {
        await pg.close();
      }
    });

    it('pages through files whose ids carry no time (taken over from a LlamaStack bucket)', async () => {
      const pg = await start();
      try {
        // LlamaStack's ids are file- + a random uuid4: the cursor's place comes from its row.
        const foreign = Array.from({ length: 4 }, (_, i) => ({
          id: `file-${[...randomBytes(16).toString('hex')].map((c, k) => (k === 12 ? '4' : c)).join('')}`,
          tenant: '',
          filename: `ls-${i}.txt`,
          purpose: 'assistants',
          bytes: i,
          createdAt: 1_700_000_000 + (i >> 1),
          expiresAt: null,
        }));
        for (const f of foreign) await pg.catalog.upsert(f);
        const byPosition = [...foreign]
          .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
          .map((f) => f.id);
        const first = (await request(`${pg.url}/v1/files?limit=2&order=asc`)).json();
        const next = (await request(`${pg.url}/v1/files?limit=2&order=asc&after=${first.last_id}`)).json();
        expect([...first.data, ...next.data].map((f: any) => f.id)).toEqual(byPosition);
        const back = (await request(`${pg.url}/v1/files?limit=10&order=desc&after=${byPosition[2]}`)).json();
        expect(back.data.map((f: any) => f.id)).toEqual([byPosition[1], byPosition[0]]);
        // Such a cursor cannot outlive its file: nothing else says where it was.
        await request(`${pg.url}/v1/files/${byPosition[1]}`, { method: 'DELETE' });
        const gone = await request(`${pg.url}/v1/files?after=${byPosition[1]}`);
        expect(gone.status).toBe(400);
        expect(gone.json().error).toMatchObject({ code: 'invalid_after', param: 'after' });
      } finally {
        await pg.close();
      }
    });

    it('returns an empty list with empty ids and filters by purpose', async () => {
      const pg = await start();
      try {
        expect((await request(`${pg.url}/v1/files`)).json()).toEqual({
          object: 'list',
          data: [],
          first_id: '',
          last_id: '',
          has_more: false,
        });
        await upload(pg.url, [{ name: 'purpose', value: 'assistants' }, filePart('a')]);
        const b = (await upload(pg.url, [{ name: 'purpose', value: 'batch' }, filePart('b')])).json();
        const batch = (await request(`${pg.url}/v1/files?purpose=batch`)).json();
        expect(batch.data.map((f: any) => f.id)).toEqual([b.id]);
        expect((await request(`${pg.url}/v1/files`)).json().data).toHaveLength(2);
      } finally {
        await pg.close();
      }
    });

    it('validates list parameters', async () => {
      for (const q of [
        'limit=0',
        'limit=10001',
        'limit=abc',
        'limit=1.5',
        'order=sideways',
        'after=not-a-file',
        'after=file-zz',
        'purpose=nonsense',
        `after=file-${'0'.repeat(32)}`,
      ]) {
        const err = expectEnvelope(await request(`${gw.url}/v1/files?${q}`), 400);
        expect(err.param).toBe(q.split('=')[0]);
      }
      expect((await request(`${gw.url}/v1/files?limit=10000`)).status).toBe(200);
    });

    it('honours expires_after in both forms, hides expired files and sweeps their bytes', async () => {
      let nowMs = Date.UTC(2031, 5, 1);
      const ex = await start({ now: () => nowMs });
      try {
        const bracket = await upload(ex.url, [
          { name: 'purpose', value: 'assistants' },
          { name: 'expires_after[anchor]', value: 'created_at' },
          { name: 'expires_after[seconds]', value: '3600' },
          filePart('short-lived'),
        ]);
        const json = await upload(ex.url, [
          filePart('also short'),
          { name: 'purpose', value: 'user_data' },
          { name: 'expires_after', value: '{"anchor":"created_at","seconds":4545}' },
        ]);
        const keeper = await upload(ex.url, [{ name: 'purpose', value: 'assistants' }, filePart('keeper')]);
        const [a, b, k] = [bracket.json(), json.json(), keeper.json()];
        expect(a.expires_at).toBe(a.created_at + 3600);
        expect(b.expires_at).toBe(b.created_at + 4545);
        expect(k.expires_at).toBeNull();

        nowMs += 3601 * 1000;
        for (const path of [`/v1/files/${a.id}`, `/v1/files/${a.id}/content`])
          expectEnvelope(await request(`${ex.url}${path}`), 404);
        expectEnvelope(await request(`${ex.url}/v1/files/${a.id}`, { method: 'DELETE' }), 404);
        expect(
          (await request(`${ex.url}/v1/files`))
            .json()
            .data.map((f: any) => f.id)
            .sort(),
        ).toEqual([b.id, k.id].sort());

        nowMs += 1000 * 1000;
        expect(await ex.files.sweep()).toEqual({ files: 2, uploads: 0 });
        expect((await request(`${ex.url}/v1/files`)).json().data.map((f: any) => f.id)).toEqual([k.id]);
        for (const id of [a.id, b.id]) await expect(ex.store.stat(id)).rejects.toThrow(/not found/);
        expect((await request(`${ex.url}/v1/files/${k.id}/content`)).body.toString()).toBe('keeper');
      } finally {
        await ex.close();
      }
    });

    it('rejects bad upload forms with 400 and stores nothing', async () => {
      const pg = await start();
      try {
        const cases: [string, Parameters<typeof upload>[1], string | null][] = [
          ['bad purpose', [{ name: 'purpose', value: 'answers' }, filePart('x')], 'purpose'],
          ['bad purpose after file', [filePart('x'), { name: 'purpose', value: 'answers' }], 'purpose'],
          ['missing purpose', [filePart('x')], 'purpose'],
          ['missing file', [{ name: 'purpose', value: 'assistants' }], 'file'],
          [
            'unknown field',
            [{ name: 'purpose', value: 'assistants' }, { name: 'colour', value: 'red' }, filePart('x')],
            'colour',
          ],
          ['two files', [{ name: 'purpose', value: 'assistants' }, filePart('x'), filePart('y')], 'file'],
          [
            'duplicate purpose',
            [{ name: 'purpose', value: 'assistants' }, { name: 'purpose', value: 'batch' }, filePart('x')],
            'purpose',
          ],
          [
            'seconds too small',
            [
              { name: 'purpose', value: 'assistants' },
              { name: 'expires_after[anchor]', value: 'created_at' },
              { name: 'expires_after[seconds]', value: '3599' },
              filePart('x'),
            ],
            'expires_after.seconds',
          ],
          [
            'seconds too large',
            [
              filePart('x'),
              { name: 'purpose', value: 'assistants' },
              { name: 'expires_after[anchor]', value: 'created_at' },
              { name: 'expires_after[seconds]', value: '2592001' },
            ],
            'expires_after.seconds',
          ],
          [
            'bad anchor',
            [
              { name: 'purpose', value: 'assistants' },
              { name: 'expires_after[anchor]', value: 'now' },
              { name: 'expires_after[seconds]', value: '3600' },
              filePart('x'),
            ],
            'expires_after.anchor',
          ],
          [
            'seconds not a number',
            [
              { name: 'purpose', value: 'assistants' },
              { name: 'expires_after[anchor]', value: 'created_at' },
              { name: 'expires_after[seconds]', value: '1e4' },
              filePart('x'),
            ],
            'expires_after.seconds',
          ],
          [
            'anchor without seconds',
            [
              { name: 'purpose', value: 'assistants' },
              { name: 'expires_after[anchor]', value: 'created_at' },
              filePart('x'),
            ],
            'expires_after',
          ],
          [
            'bad JSON expires_after',
            [{ name: 'purpose', value: 'assistants' }, { name: 'expires_after', value: '{oops' }, filePart('x')],
            'expires_after',
          ],
        ];
        for (const [label, parts, param] of cases) {
          const err = expectEnvelope(await upload(pg.url, parts), 400);
          expect(err.param, label).toBe(param);
          expect(err.type).toBe('invalid_request_error');
        }
        for (const [label, body, contentType] of [
          [
            'truncated multipart',
            Buffer.from('--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'),
            'multipart/form-data; boundary=b',
          ],
          ['no boundary', Buffer.from('whatever'), 'multipart/form-data'],
          ['garbage', Buffer.from('garbage without any boundary at all'), 'multipart/form-data; boundary=b'],
          ['json body', Buffer.from('{"purpose":"assistants"}'), 'application/json'],
        ] as const) {
          const res = await request(`${pg.url}/v1/files`, {
            method: 'POST',
            headers: { 'content-type': contentType },
            body,
          });
          expect(res.status, label).toBeGreaterThanOrEqual(400);
          expect(res.status, label).toBeLessThan(500);
          expectEnvelope(res, res.status);
        }
        expect((await request(`${pg.url}/v1/files`)).json().data).toEqual([]);
        expect(await blobFiles(pg)).toEqual([]);
        expect(await backend.inProgress(pg)).not.toBeGreaterThan(0);
      } finally {
        await pg.close();
      }
    });

    it('answers unknown and malformed ids with 4xx JSON, never 5xx', async () => {
      const missing = `file-${'a'.repeat(32)}`;
      for (const method of ['GET', 'DELETE']) {
        const err = expectEnvelope(await request(`${gw.url}/v1/files/${missing}`, { method }), 404);
        expect(err.message).toContain('not found');
      }
      expect(expectEnvelope(await request(`${gw.url}/v1/files/${missing}/content`), 404).message).toContain(
        'not found',
      );
      for (const id of [
        '..%2F..%2Fetc%2Fpasswd',
        '%2e%2e',
        'file-..%2F..%2Fcatalog.sqlite',
        'file-%00',
        'x'.repeat(300),
        'file-ABC',
        '%252e%252e%252f',
        '%E0%A4%A',
      ]) {
        for (const suffix of ['', '/content']) {
          const res = await request(`${gw.url}/v1/files/${id}${suffix}`);
          expect(res.status, id).toBeGreaterThanOrEqual(400);
          expect(res.status, id).toBeLessThan(500);
          expectEnvelope(res, res.status);
          expect(res.headers['x-request-id'], id).toBeTruthy();
        }
      }
      const route = expectEnvelope(await request(`${gw.url}/v2/nothing-here`), 404);
      expect(route.message).toContain('not found');
      expectEnvelope(await request(`${gw.url}/v1/files`, { method: 'PUT' }), 404);
    });

    it('deletes with Content-Type: application/json and an empty body; a second delete is 404', async () => {
      const id = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('bye')])).json().id;
      const del = await request(`${gw.url}/v1/files/${id}`, {
        method: 'DELETE',
        headers: { 'content-type': 'application/json' },
      });
      expect(del.status).toBe(200);
      expect(del.json()).toEqual({ id, object: 'file', deleted: true });
      expectEnvelope(
        await request(`${gw.url}/v1/files/${id}`, {
          method: 'DELETE',
          headers: { 'content-type': 'application/json' },
        }),
        404,
      );
      await expect(gw.store.stat(id)).rejects.toThrow(/not found/);
    });

    it('echoes a client x-request-id and makes one up otherwise', async () => {
      const given = await request(`${gw.url}/v1/files?limit=1`, { headers: { 'x-request-id': 'trace-abc.123' } });
      expect(given.headers['x-request-id']).toBe('trace-abc.123');
      const made = await request(`${gw.url}/v1/files?limit=1`, { headers: { 'x-request-id': 'bad id\twith tab' } });
      expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('rejects a file over the limit with 413 while streaming, leaving no bytes and no row', async () => {
      const small = await start({ maxFileBytes: 64 * 1024 });
      try {
        const exact = await upload(small.url, [
          { name: 'purpose', value: 'assistants' },
          filePart(Buffer.alloc(64 * 1024, 1)),
        ]);
        expect(exact.status).toBe(200);
        const before = await blobFiles(small);

        // Chunked, so no Content-Length tells the server in advance.
        const { body, contentType } = multipartBody([
          { name: 'purpose', value: 'assistants' },
          filePart(Buffer.alloc(1024 * 1024, 2)),
        ]);
        const chunks = [];
        for (let i = 0; i < body.length; i += 16 * 1024) chunks.push(body.subarray(i, i + 16 * 1024));
        const res = await request(`${small.url}/v1/files`, {
          method: 'POST',
          headers: { 'content-type': contentType, 'transfer-encoding': 'chunked' },
          chunks,
        }).catch((err) => err as Error);
        if (res instanceof Error) throw res;
        const err = expectEnvelope(res, 413);
        expect(err.code).toBe('file_too_large');
        expect((await request(`${small.url}/v1/files`)).json().data).toHaveLength(1);
        expect(await blobFiles(small)).toEqual(before);
        expect(await backend.inProgress(small)).not.toBeGreaterThan(0);
      } finally {
        await small.close();
      }
    });

    it('leaves no row, no blob and no temp file when the client aborts mid-upload', async () => {
      const ab = await start();
      try {
        // Bigger than an S3 part, so the S3 store has a multipart upload open when the client leaves.
        const { body, contentType } = multipartBody([
          { name: 'purpose', value: 'assistants' },
          filePart(Buffer.alloc(16 * 1024 * 1024, 7)),
        ]);
        const { port } = new URL(ab.url);
        const socket = net.connect(Number(port), '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        socket.write(
          `POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        socket.write(body.subarray(0, 12 * 1024 * 1024));
        // Let the server start storing the bytes before the client goes away.
        await eventually(async () => ((await backend.inProgress(ab)) ?? 1) > 0);
        socket.destroy();
        await eventually(async () => (await blobFiles(ab)).length === 0 && ((await backend.inProgress(ab)) ?? 0) === 0);
        expect((await request(`${ab.url}/v1/files`)).json().data).toEqual([]);
        // And the gateway still serves.
        expect((await upload(ab.url, [{ name: 'purpose', value: 'assistants' }, filePart('after abort')])).status).toBe(
          200,
        );
      } finally {
        await ab.close();
      }
    });

    it('streams a large download to a slow reader with correct bytes', async () => {
      const size = 8 * 1024 * 1024;
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4) data.writeUInt32LE(i, i);
      const uploaded = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart(data, 'big.bin')]);
      expect(uploaded.status).toBe(200);
      const res = await fetch(`${gw.url}/v1/files/${uploaded.json().id}/content`);
      const hash = createHash('sha256');
      const reader = res.body!.getReader();
      for (let n = 0; ; n++) {
        const { done, value } = await reader.read();
        if (done) break;
        hash.update(value);
        if (n % 16 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      expect(hash.digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    });
  });
}

/** Blobs of the store that are in place (not temp files); fs only, s3 tests check the bucket. */
async function blobFiles(gw: Gateway): Promise<string[]> {
  if (gw.store.kind !== 'fs') {
    const ids: string[] = [];
    for await (const b of gw.store.list()) ids.push(b.id);
    return ids.sort();
  }
  return (await filesUnder(path.join(gw.dataDir, 'files'))).sort();
}
