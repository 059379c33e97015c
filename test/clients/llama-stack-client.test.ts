/**
 * The real `llama-stack-client` npm package in both generations LlamaStack users run:
 * 0.7.3 (calls /v1/files...) and 0.3.0 (calls /v1/openai/v1/files...). Each gets its own gateway.
 * The clients' own transport (node-fetch from their shims) is wrapped to record what they sent, and
 * the gateway's socket is observed too, so the tests also prove which path prefix each one used.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import LlamaStackClient, { toFile } from 'llama-stack-client';
import { fetch as shimFetch } from 'llama-stack-client/_shims/index';
import LlamaStackClient03, { toFile as toFile03 } from 'llama-stack-client-0.3';
import { fetch as shimFetch03 } from 'llama-stack-client-0.3/_shims/index';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { pathOf, queryOf, recordRequests } from './wire-log.js';
import { rejectionOf } from '../helpers/promises.js';

/** The slice of the two clients' `files` resource these tests use (both match it structurally). */
interface LsFile {
  id: string;
  bytes: number;
  created_at: number;
  expires_at?: number | null;
  filename: string;
  purpose: string;
  object?: 'file';
}
/** The clients' OpenAICursorPage keeps data, has_more and last_id (its cursor), not first_id. */
interface LsPage {
  data: LsFile[];
  has_more: boolean;
  last_id: string;
}
interface LsFiles {
  create(body: {
    file: any;
    purpose: 'assistants' | 'batch';
    expires_after?: { anchor: 'created_at'; seconds: number } | null;
  }): Promise<LsFile>;
  retrieve(id: string): Promise<LsFile>;
  list(query: {
    limit?: number;
    order?: 'asc' | 'desc';
    after?: string;
    purpose?: 'assistants' | 'batch';
  }): Promise<LsPage> & AsyncIterable<LsFile> & { asResponse(): Promise<{ json(): Promise<unknown> }> };
  delete(id: string): Promise<{ id: string; deleted: boolean; object?: 'file' }>;
  content(id: string): Promise<unknown>;
}

interface SentRequest {
  url: string;
  method: string;
  headers: Record<string, string>;
}

type AnyFetch = (url: any, init?: any) => Promise<any>;

interface ClientUnderTest {
  name: string;
  /** The path prefix this client generation calls. */
  prefix: '/v1' | '/v1/openai/v1';
  make(baseURL: string, fetch: AnyFetch): { files: LsFiles };
  toFile(data: Buffer, name: string): Promise<unknown>;
  NotFoundError: abstract new (...args: any[]) => Error & { status: number | undefined };
  transport: AnyFetch;
}

const CLIENTS: ClientUnderTest[] = [
  {
    name: 'llama-stack-client 0.7.3',
    prefix: '/v1',
    make: (baseURL, fetch) => new LlamaStackClient({ baseURL, maxRetries: 0, fetch }),
    toFile: (data, name) => toFile(data, name),
    NotFoundError: LlamaStackClient.NotFoundError,
    transport: shimFetch as AnyFetch,
  },
  {
    name: 'llama-stack-client 0.3.0',
    prefix: '/v1/openai/v1',
    make: (baseURL, fetch) => new LlamaStackClient03({ baseURL, maxRetries: 0, fetch }),
    toFile: (data, name) => toFile03(data, name),
    NotFoundError: LlamaStackClient03.NotFoundError,
    transport: shimFetch03 as AnyFetch,
  },
];

function headerRecord(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  const entries: Iterable<[string, string]> =
    typeof (h as Headers).entries === 'function' && !Array.isArray(h)
      ? (h as Headers).entries()
      : Object.entries(h as Record<string, string>);
  for (const [k, v] of entries) out[k.toLowerCase()] = String(v);
  return out;
}

describe.each(CLIENTS)('$name against the gateway', (c) => {
  let gw: Gateway;
  let files: LsFiles;
  let tmp: string;
  let wire: ReturnType<typeof recordRequests>;
  const sent: SentRequest[] = [];
  const filesPath = `${c.prefix}/files`;

  beforeAll(async () => {
    gw = await startGateway();
    wire = recordRequests(gw);
    const recordingFetch: AnyFetch = (url, init) => {
      sent.push({
        url: String(url),
        method: String(init?.method ?? 'GET').toUpperCase(),
        headers: headerRecord(init?.headers),
      });
      return c.transport(url, init);
    };
    // No /v1 in baseURL: the client puts its whole path (/v1/... or /v1/openai/v1/...) into each call.
    files = c.make(gw.url, recordingFetch).files;
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'files-gateway-lsc-'));
  });
  afterAll(async () => {
    wire?.stop();
    await gw?.close();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  const created: LsFile[] = [];
  const text = 'héllo from llama-stack-client ✓\nline two\n';

  it('creates from fs.createReadStream (fields first, buffered with Content-Length)', async () => {
    const file = path.join(tmp, 'lsc-demo.txt');
    await fsp.writeFile(file, text);
    wire.clear();
    const f = await files.create({ file: fs.createReadStream(file), purpose: 'assistants' });
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[0-9a-f]{32}$/),
      object: 'file',
      bytes: Buffer.byteLength(text),
      created_at: expect.any(Number),
      expires_at: null,
      filename: 'lsc-demo.txt',
      purpose: 'assistants',
      status: 'processed',
      status_details: null,
    });
    expect(Math.abs(f.created_at - Date.now() / 1000)).toBeLessThan(5);
    created.push(f);

    expect(wire.seen).toHaveLength(1);
    const seen = wire.seen[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe(filesPath);
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=form-data-boundary-/);
    expect(Number(seen.headers['content-length'])).toBeGreaterThan(Buffer.byteLength(text));
  });

  it('creates from toFile with expires_after (bracketed fields)', async () => {
    const f = await files.create({
      file: await c.toFile(Buffer.from('{"x":1}\n'), 'batch.jsonl'),
      purpose: 'batch',
      expires_after: { anchor: 'created_at', seconds: 7200 },
    });
    expect(f).toMatchObject({ filename: 'batch.jsonl', purpose: 'batch', bytes: 8 });
    expect(f.expires_at).toBe(f.created_at + 7200);
    created.push(f);
  });

  it('lists a first page with limit: has_more, first_id and last_id', async () => {
    // 2 + 12 = 14 files in this gateway: enough for several pages of 3.
    for (let i = 0; i < 12; i++) {
      created.push(
        await files.create({ file: await c.toFile(Buffer.from(`page file ${i}`), `p${i}.txt`), purpose: 'assistants' }),
      );
    }
    const ascending = [...created]
      .sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map((f) => f.id);

    const first = await files.list({ limit: 3, order: 'asc' });
    expect(first.data.map((f) => f.id)).toEqual(ascending.slice(0, 3));
    expect(first.has_more).toBe(true);
    expect(first.last_id).toBe(ascending[2]);
    // The raw body carries all five list fields.
    const raw = await files.list({ limit: 3, order: 'asc' }).asResponse();
    expect(await raw.json()).toMatchObject({
      object: 'list',
      first_id: ascending[0],
      last_id: ascending[2],
      has_more: true,
    });

    const last = await files.list({ limit: 3, order: 'asc', after: ascending[11] });
    expect(last.data.map((f) => f.id)).toEqual(ascending.slice(12));
    expect(last.has_more).toBe(false);
    expect(last.last_id).toBe(ascending[13]);

    const onlyBatch = await files.list({ limit: 100, purpose: 'batch' });
    expect(onlyBatch.data.map((f) => f.id)).toEqual([created[1]!.id]);
  });

  it('auto-paginates with limit 3, collecting every id exactly once, following last_id', async () => {
    wire.clear();
    const got: string[] = [];
    for await (const f of files.list({ limit: 3 })) got.push(f.id);
    expect(got).toHaveLength(14);
    expect(new Set(got).size).toBe(14);
    expect([...got].sort()).toEqual(created.map((f) => f.id).sort());
    // Default order is newest first.
    const descending = [...created]
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
      .map((f) => f.id);
    expect(got).toEqual(descending);

    // 3+3+3+3+2: five requests, the cursor being the previous body's last_id.
    const lists = wire.seen.filter((r) => r.method === 'GET');
    expect(lists.map((r) => pathOf(r.url))).toEqual(Array(5).fill(filesPath));
    expect(queryOf(lists[0]!.url).get('after')).toBeNull();
    for (let p = 1; p < 5; p++) {
      expect(queryOf(lists[p]!.url).get('limit')).toBe('3');
      expect(queryOf(lists[p]!.url).get('after')).toBe(got[p * 3 - 1]);
    }
  });

  it('retrieves a file', async () => {
    const f = created[0]!;
    expect(await files.retrieve(f.id)).toEqual(f);
  });

  it('content returns the text of a text file', async () => {
    const content = await files.content(created[0]!.id);
    expect(typeof content).toBe('string');
    expect(content).toBe(text);
    // JSON content must not be parsed into an object: it comes back as the same text.
    expect(await files.content(created[1]!.id)).toBe('{"x":1}\n');
  });

  it('deletes (DELETE with Content-Type: application/json and no body), then retrieve is NotFoundError 404', async () => {
    const f = created[0]!;
    wire.clear();
    expect(await files.delete(f.id)).toEqual({ id: f.id, object: 'file', deleted: true });
    const del = wire.seen[0]!;
    expect(del.method).toBe('DELETE');
    expect(del.url).toBe(`${filesPath}/${f.id}`);
    expect(del.headers['content-type']).toBe('application/json');
    expect(del.headers['content-length'] ?? '0').toBe('0');

    for (const call of [() => files.retrieve(f.id), () => files.content(f.id), () => files.delete(f.id)]) {
      const err = await rejectionOf(call());
      expect(err).toBeInstanceOf(c.NotFoundError);
      const nf = err as InstanceType<typeof c.NotFoundError>;
      expect(nf.status).toBe(404);
      expect(nf.message).toContain('not found');
    }
    expect((await files.list({ limit: 100 })).data.map((x) => x.id)).not.toContain(f.id);
  });

  it(`sent every request to ${c.prefix}/files... and nowhere else`, () => {
    expect(sent.length).toBeGreaterThan(20);
    for (const r of sent) {
      expect(r.url.startsWith(`${gw.url}${filesPath}`)).toBe(true);
      if (c.prefix === '/v1') expect(r.url).not.toContain('/openai/');
    }
    expect(new Set(sent.map((r) => r.method))).toEqual(new Set(['POST', 'GET', 'DELETE']));
    expect(sent.every((r) => /^LlamaStackClient\/JS /.test(r.headers['user-agent'] ?? ''))).toBe(true);
    // The gateway saw the same paths (no redirects, no other prefix).
    expect(wire.seen.every((r) => r.url.startsWith(filesPath))).toBe(true);
  });
});
