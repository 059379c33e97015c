/**
 * Fairness between tenants and slow clients, over raw sockets: one tenant trickling uploads at its
 * cap leaves other tenants' uploads and upload parts alone, its own extra uploads are refused before
 * their bodies are read, its slots come back however its uploads end, and an upload body below the
 * minimum rate is cut with a 408 and leaves nothing behind (fs and S3 stores).
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/compose.js';
import type { Limits, S3Config } from '../../src/config.js';
import { GatewayMetrics } from '../../src/metrics.js';
import { filesUnder, gatewayConfig, tempDir } from '../helpers/gateway.js';
import { filePart, multipartBody, request } from '../helpers/http.js';
import { sampleValue, scrape } from '../helpers/metrics.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';
import { type Answer, connect, type Exchange, parseAnswer } from '../helpers/raw-http.js';
import { eventually } from '../helpers/wait.js';

const KEY_A = 'sk-fairness-tenant-a-0123';
const KEY_B = 'sk-fairness-tenant-b-0123';
const KEYS = [
  { key: KEY_A, tenant: 'a' },
  { key: KEY_B, tenant: 'b' },
];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface LogLine {
  level: number;
  msg?: string;
  tenant?: string;
  reqId?: string;
}

interface TestGateway {
  url: string;
  dataDir: string;
  logLines: LogLine[];
  close(): Promise<void>;
}

/** A gateway with the default limits but `limits`, keys for tenants a and b unless `open`. */
async function gateway(opts: { limits?: Partial<Limits>; open?: boolean; s3?: S3Config } = {}): Promise<TestGateway> {
  const dataDir = await tempDir('files-gateway-fairness-');
  const config = gatewayConfig(dataDir, { apiKeys: opts.open ? undefined : KEYS, s3: opts.s3 });
  const logLines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  const gw = await compose(
    { ...config, limits: { ...config.limits, ...opts.limits } },
    { metrics: new GatewayMetrics({ version: 'test' }), log: pino({ level: 'info' }, sink) },
  );
  await gw.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = gw.app.server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, dataDir, logLines, close: () => gw.close() };
}

/** The OpenAI envelope with this status and code, on a connection the server closes. */
function expectEnvelope(answer: Answer, status: number, code: string): { message: string; type: string } {
  expect(answer.status, answer.body).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(answer.headers.connection).toBe('close');
  const { error } = JSON.parse(answer.body) as { error: { message: string; type: string; code: string } };
  expect(error.code).toBe(code);
  return error;
}

const requestHead = (target: string, key: string | undefined, contentType: string, length: number, extra = '') =>
  `POST ${target} HTTP/1.1\r\nHost: x\r\n${key ? `Authorization: Bearer ${key}\r\n` : ''}` +
  `Content-Type: ${contentType}\r\nContent-Length: ${length}\r\n${extra}\r\n`;

/** What the server sent before closing the connection, or a note that it kept it open. */
const closedWithin = (ex: Exchange, ms: number) =>
  Promise.race([ex.closed.then((c) => c.received), sleep(ms).then(() => `still open after ${ms} ms`)]);

/** Opens an upload whose headers are sent and whose body is still to come. */
async function openUpload(url: string, key: string | undefined, target = '/v1/files'): Promise<Exchange> {
  const ex = await connect(url);
  ex.socket.write(requestHead(target, key, 'multipart/form-data; boundary=trickle', 64 * MiB));
  return ex;
}

/** One byte every `everyMs` until the socket closes. */
async function trickle(ex: Exchange, everyMs: number): Promise<void> {
  while (!ex.socket.destroyed) {
    ex.socket.write('-');
    await sleep(everyMs);
  }
}

/** Opens `n` uploads at once and waits until every one the server refuses has been answered and closed. */
async function openUploads(
  url: string,
  key: string | undefined,
  n: number,
  expectRefused: number,
): Promise<{ held: Exchange[]; refused: string[] }> {
  const all = await Promise.all(Array.from({ length: n }, () => openUpload(url, key)));
  const refused: string[] = [];
  const held: Exchange[] = [];
  await eventually(async () => all.filter((ex) => ex.socket.destroyed).length >= expectRefused);
  // Give the server the time to (wrongly) refuse more than it should.
  await sleep(300);
  for (const ex of all) {
    if (ex.socket.destroyed) refused.push((await ex.closed).received);
    else held.push(ex);
  }
  return { held, refused };
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

function uploadFile(url: string, key: string, data: string) {
  const { body, contentType } = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart(data, 'f.txt')]);
  return request(`${url}/v1/files`, { method: 'POST', headers: { ...auth(key), 'content-type': contentType }, body });
}

function createUpload(url: string, key: string, bytes: number) {
  return request(`${url}/v1/uploads`, {
    method: 'POST',
    headers: { ...auth(key), 'content-type': 'application/json' },
    body: JSON.stringify({ bytes, filename: 'big.bin', mime_type: 'application/octet-stream', purpose: 'assistants' }),
  });
}

function addPart(url: string, key: string, uploadId: string, data: string) {
  const { body, contentType } = multipartBody([{ name: 'data', filename: 'chunk', data: Buffer.from(data) }]);
  return request(`${url}/v1/uploads/${uploadId}/parts`, {
    method: 'POST',
    headers: { ...auth(key), 'content-type': contentType },
    body,
  });
}

describe('uploads in progress per tenant', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // The defaults: 64 uploads at once, 16 per tenant.
    gw = await gateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("leaves another tenant's uploads and upload parts alone while one tenant trickles 64 uploads", {
    timeout: 60_000,
  }, async () => {
    const { held, refused } = await openUploads(gw.url, KEY_A, 64, 48);
    expect(held).toHaveLength(16);
    // The refusals came without a byte of body: the server answered on the headers and closed.
    expect(refused).toHaveLength(48);
    for (const raw of refused) {
      const answer = parseAnswer(raw);
      const error = expectEnvelope(answer, 503, 'tenant_overloaded');
      expect(answer.headers['retry-after']).toBe('1');
      expect(error.type).toBe('service_unavailable');
      expect(error.message).toContain('16 uploads in progress');
    }
    const trickles = held.map((ex) => trickle(ex, 2000));
    try {
      // Tenant b, meanwhile: files, and an upload in parts, several at once.
      const files = await Promise.all(Array.from({ length: 8 }, (_, i) => uploadFile(gw.url, KEY_B, `b-${i}`)));
      for (const res of files) expect(res.status, res.body.toString()).toBe(200);
      const created = await createUpload(gw.url, KEY_B, 8);
      expect(created.status).toBe(200);
      const id = created.json().id as string;
      const parts = await Promise.all(['b-pa', 'rt-1'].map((d) => addPart(gw.url, KEY_B, id, d)));
      for (const res of parts) expect(res.status, res.body.toString()).toBe(200);
      const done = await request(`${gw.url}/v1/uploads/${id}/complete`, {
        method: 'POST',
        headers: { ...auth(KEY_B), 'content-type': 'application/json' },
        body: JSON.stringify({ part_ids: parts.map((p) => p.json().id) }),
      });
      expect(done.json().status).toBe('completed');
      // Tenant a's reads are not uploads; its next upload is still refused, body unread.
      expect((await request(`${gw.url}/v1/files`, { headers: auth(KEY_A) })).status).toBe(200);
      const more = await openUpload(gw.url, KEY_A);
      expectEnvelope(parseAnswer(await closedWithin(more, 5000)), 503, 'tenant_overloaded');
      // The trickles are still held, untouched.
      expect(held.every((ex) => !ex.socket.destroyed && ex.received() === '')).toBe(true);
    } finally {
      for (const ex of held) ex.socket.destroy();
      await Promise.all(trickles);
    }
  });

  it("gives a tenant's slots back however its uploads end: hung up, refused, finished", {
    timeout: 60_000,
  }, async () => {
    // 16 uploads whose bodies are still to come: 8 will hang up, 4 send a form the gateway refuses
    // (400), 4 a good one.
    const bad = multipartBody([filePart('no purpose')]);
    const good = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart('fine')]);
    const formOf = (i: number) => (i < 12 ? bad : good);
    const held: Exchange[] = [];
    for (let i = 0; i < 16; i++) {
      const ex = await connect(gw.url);
      const { contentType, body } = formOf(i);
      ex.socket.write(requestHead('/v1/files', KEY_A, contentType, body.length, 'Connection: close\r\n'));
      held.push(ex);
    }
    await sleep(300);
    const over = await openUpload(gw.url, KEY_A);
    expectEnvelope(parseAnswer(await closedWithin(over, 5000)), 503, 'tenant_overloaded');
    const ends = held.map(async (ex, i) => {
      if (i < 8) {
        ex.socket.destroy();
        return undefined;
      }
      ex.socket.write(formOf(i).body);
      return parseAnswer((await ex.closed).received).status;
    });
    expect((await Promise.all(ends)).filter((s) => s !== undefined).sort()).toEqual([
      200, 200, 200, 200, 400, 400, 400, 400,
    ]);
    // Every slot is free again, exactly: 16 held once more and the 17th refused.
    let again: Awaited<ReturnType<typeof openUploads>> | undefined;
    await eventually(async () => {
      for (const ex of again?.held ?? []) ex.socket.destroy();
      again = await openUploads(gw.url, KEY_A, 17, 1);
      return again.held.length === 16;
    });
    expect(again!.refused).toHaveLength(1);
    for (const ex of again!.held) ex.socket.destroy();
    await eventually(async () => (await uploadFile(gw.url, KEY_A, 'after')).status === 200);
  });
});

describe('an open gateway (no API keys)', () => {
  it('has one tenant, everyone, and no per-tenant cap below the global one', { timeout: 30_000 }, async () => {
    const gw = await gateway({ open: true, limits: { maxConcurrentUploads: 4, maxConcurrentUploadsPerTenant: 1 } });
    try {
      const { held, refused } = await openUploads(gw.url, undefined, 4, 0);
      expect(refused).toEqual([]);
      expect(held).toHaveLength(4);
      for (const ex of held) ex.socket.destroy();
    } finally {
      await gw.close();
    }
  });
});

interface Backend {
  name: string;
  s3?: () => S3Config;
  /** What the store holds: blobs, parts, temp files, open multipart uploads (under `prefix` on S3). */
  leftovers(gw: TestGateway, prefix: string): Promise<string[]>;
}

let bucket: TestBucket | undefined;
const backends: Backend[] = [
  {
    name: 'fs',
    leftovers: async (gw) =>
      (await filesUnder(gw.dataDir)).filter((f) => !path.basename(f).startsWith('catalog.sqlite')),
  },
  {
    name: 's3',
    s3: () => bucket!.config({ prefix: `fair-${randomBytes(4).toString('hex')}/`, partSizeBytes: 5 * MiB }),
    async leftovers(_gw, prefix) {
      const objects = await bucket!.client.send(
        new ListObjectsV2Command({ Bucket: bucket!.config().bucket, Prefix: prefix }),
      );
      const uploads = await bucket!.client.send(
        new ListMultipartUploadsCommand({ Bucket: bucket!.config().bucket, Prefix: prefix }),
      );
      return [
        ...(objects.Contents ?? []).map((o) => o.Key!),
        ...(uploads.Uploads ?? []).map((u) => `multipart upload of ${u.Key}`),
      ];
    },
  },
];

describe.each(backends)('the minimum upload rate ($name store)', (backend) => {
  let gw: TestGateway;
  let prefix = '';
  // 1 KiB/s over 1 s windows, so each case takes seconds.
  const limits = { minUploadBytesPerSecond: 1024, minUploadRateWindowMs: 1000 };
  beforeAll(async () => {
    if (backend.s3) {
      bucket ??= await createTestBucket({ label: 'fairness' });
      const s3 = backend.s3();
      prefix = s3.prefix;
      gw = await gateway({ limits, s3 });
    } else gw = await gateway({ limits });
  });
  afterAll(async () => {
    await gw?.close();
    if (backend.s3) {
      await bucket?.destroy();
      bucket = undefined;
    }
  });

  /** Sends `form` to `target`: its first `fast` bytes at once, then a byte every 250 ms (4 bytes/s). */
  async function trickleForm(target: string, form: { body: Buffer; contentType: string }, fast: number) {
    const ex = await connect(gw.url);
    ex.socket.write(requestHead(target, KEY_A, form.contentType, form.body.length));
    ex.socket.write(form.body.subarray(0, fast));
    const rest = form.body.subarray(fast);
    const feeding = (async () => {
      for (let i = 0; i < rest.length && !ex.socket.destroyed; i++) {
        ex.socket.write(rest.subarray(i, i + 1));
        await sleep(250);
      }
    })();
    // The first window may go by while the store takes the fast bytes (not the client's fault).
    const raw = await closedWithin(ex, 45_000);
    ex.socket.destroy();
    await feeding;
    return raw;
  }

  it('cuts a trickle below the minimum with 408, closes, and leaves no row, blob or part', {
    timeout: 120_000,
  }, async () => {
    // More than one S3 part arrives at once, so a multipart upload is under way when the trickle starts.
    const data = Buffer.alloc(6 * MiB + 1024, 7);
    const form = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart(data, 'slow.bin')]);
    const fileAnswer = parseAnswer(await trickleForm('/v1/files', form, 6 * MiB));
    const error = expectEnvelope(fileAnswer, 408, 'upload_too_slow');
    expect(error.message).toContain('1024 bytes per second over 1 seconds');

    const created = await createUpload(gw.url, KEY_A, 7 * MiB);
    expect(created.status).toBe(200);
    const uploadId = created.json().id as string;
    const part = multipartBody([{ name: 'data', filename: 'chunk', data }]);
    expectEnvelope(
      parseAnswer(await trickleForm(`/v1/uploads/${uploadId}/parts`, part, 6 * MiB)),
      408,
      'upload_too_slow',
    );

    expect((await request(`${gw.url}/v1/files`, { headers: auth(KEY_A) })).json().data).toEqual([]);
    // On S3 what the cut part sent may be inside the upload's assembly: it goes with the upload.
    const cancel = await request(`${gw.url}/v1/uploads/${uploadId}/cancel`, { method: 'POST', headers: auth(KEY_A) });
    expect(cancel.status).toBe(200);
    await eventually(async () => (await backend.leftovers(gw, prefix)).length === 0);
    const metrics = await scrape(gw.url);
    expect(sampleValue(metrics, 'files_gateway_uploads_total', { outcome: 'too_slow' })).toBe(1);
    const partsCut = { method: 'POST', route: '/v1/uploads/:upload_id/parts', status_code: '408' };
    expect(sampleValue(metrics, 'http_request_duration_seconds_count', partsCut)).toBe(1);
    const cuts = gw.logLines.filter((l) => l.msg === 'upload cut off: too slow');
    expect(cuts).toHaveLength(2);
    for (const line of cuts) {
      expect(line.tenant).toBe('a');
      expect(line.reqId).toEqual(expect.any(String));
      expect(line.level).toBe(40);
    }
  });

  it('lets a slow upload above the minimum finish', { timeout: 30_000 }, async () => {
    const data = randomBytes(12 * 1024);
    const form = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart(data, 'steady.bin')]);
    const ex = await connect(gw.url);
    ex.socket.write(requestHead('/v1/files', KEY_A, form.contentType, form.body.length, 'Connection: close\r\n'));
    // 1 KiB every 250 ms: 4 KiB/s, about three seconds, three windows.
    for (let at = 0; at < form.body.length; at += 1024) {
      ex.socket.write(form.body.subarray(at, at + 1024));
      await sleep(250);
    }
    const answer = parseAnswer((await ex.closed).received);
    expect(answer.status, answer.body).toBe(200);
    const file = JSON.parse(answer.body) as { id: string; bytes: number };
    expect(file.bytes).toBe(data.length);
    const content = await request(`${gw.url}/v1/files/${file.id}/content`, { headers: auth(KEY_A) });
    expect(content.body.equals(data)).toBe(true);
  });
});
