/**
 * What the gateway answers at the edges of HTTP, over raw sockets: requests Node's parser refuses,
 * expectations, refused keys with bodies still to come, and clients that hang up mid-upload.
 */
import fs from 'node:fs/promises';
import type net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/compose.js';
import { GatewayMetrics } from '../../src/metrics.js';
import { gatewayConfig, startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { filePart, multipartBody } from '../helpers/http.js';
import { sampleValue, scrape } from '../helpers/metrics.js';
import { type Answer, connect, parseAnswer } from '../helpers/raw-http.js';
import { eventually } from '../helpers/wait.js';

const KEY = 'sk-wire-edges-0123456789';
const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends `raw` and waits for the server to close the connection. */
async function exchange(url: string, raw: Buffer | string): Promise<string> {
  const ex = await connect(url);
  ex.socket.write(raw);
  const { received } = await ex.closed;
  return received;
}

function expectEnvelope(answer: Answer, status: number): void {
  expect(answer.status, answer.body).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(answer.headers.connection).toBe('close');
  const body = JSON.parse(answer.body) as { error: Record<string, unknown> };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toEqual({
    message: expect.any(String),
    type: 'invalid_request_error',
    param: null,
    code: expect.any(String),
  });
}

const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

describe('answers at the edges of HTTP', () => {
  let gw: Gateway;
  const logLines: { level: number; msg?: string; err?: { code?: string } }[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
        done();
      },
    });
    gw = await startGateway({ apiKeys: [{ key: KEY, tenant: 'edges' }], log: pino({ level: 'info' }, sink) });
  });
  afterAll(async () => {
    await gw?.close();
  });
  const auth = `Authorization: Bearer ${KEY}`;

  it('answers requests the HTTP parser refuses in the OpenAI envelope, and closes', async () => {
    const cases: [string, string | Buffer, number][] = [
      [
        'a bad chunk size',
        `${head(['POST /v1/files HTTP/1.1', 'Host: x', auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked'])}zz\r\n{}\r\n0\r\n\r\n`,
        400,
      ],
      [
        'Content-Length with Transfer-Encoding',
        `${head(['POST /v1/uploads HTTP/1.1', 'Host: x', auth, 'Content-Length: 2', 'Transfer-Encoding: chunked'])}2\r\n{}\r\n0\r\n\r\n`,
        400,
      ],
      ['a bad request line', head(['GET /v1/files HTTP/1.1 extra', 'Host: x']), 400],
      ['an unknown method', head(['BREW /v1/files HTTP/1.1', 'Host: x']), 400],
      ['raw UTF-8 bytes in the path', Buffer.from(head(['GET /v1/files/fïle HTTP/1.1', 'Host: x']), 'utf8'), 400],
      ['an oversized header', head(['GET /v1/files HTTP/1.1', 'Host: x', `X-Big: ${'h'.repeat(64 * 1024)}`]), 431],
    ];
    for (const [what, raw, status] of cases) {
      const answer = parseAnswer(await exchange(gw.url, raw));
      expectEnvelope(answer, status);
      expect(answer.body, what).not.toContain('Client Error');
    }
  });

  it('answers an unknown Expect with 417 in the envelope, without reading the body', { timeout: 15_000 }, async () => {
    const answer = parseAnswer(
      await exchange(
        gw.url,
        head([
          'POST /v1/uploads HTTP/1.1',
          'Host: x',
          auth,
          'Expect: tea',
          'Content-Type: application/json',
          'Content-Length: 2',
        ]),
      ),
    );
    expectEnvelope(answer, 417);
    expect(JSON.parse(answer.body).error.code).toBe('expectation_failed');
  });

  it('keeps the router answers in the envelope (404, 414)', async () => {
    const missing = parseAnswer(
      await exchange(gw.url, head(['GET /v1/no/such/route HTTP/1.1', 'Host: x', 'Connection: close'])),
    );
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toMatchObject({ type: 'invalid_request_error', code: 'route_not_found' });
    const long = parseAnswer(
      await exchange(
        gw.url,
        head([`GET /v1/files/file-${'a'.repeat(600)} HTTP/1.1`, 'Host: x', auth, 'Connection: close']),
      ),
    );
    expect(long.status).toBe(414);
    expect(JSON.parse(long.body).error).toMatchObject({
      type: 'invalid_request_error',
      message: 'The URL is too long.',
    });
  });

  it('answers a refused key at once and closes without reading a 256 MiB body', { timeout: 30_000 }, async () => {
    const ex = await connect(gw.url);
    ex.socket.write(
      head([
        'POST /v1/files HTTP/1.1',
        'Host: x',
        'Authorization: Bearer sk-not-a-key-000000',
        'Content-Type: multipart/form-data; boundary=b',
        `Content-Length: ${256 * MiB}`,
      ]),
    );
    // 64 KiB every 10 ms: the whole body would take about 40 s.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    const feeding = (async () => {
      while (!ex.socket.destroyed && sent < 256 * MiB) {
        ex.socket.write(chunk);
        sent += chunk.length;
        await sleep(10);
      }
    })();
    const closed = await Promise.race([ex.closed, sleep(10_000).then(() => undefined)]);
    ex.socket.destroy();
    await feeding;
    expect(closed, `still open after sending ${sent} bytes`).toBeDefined();
    expect(closed!.afterMs).toBeLessThan(5000);
    const answer = parseAnswer(closed!.received);
    expect(answer.status).toBe(401);
    expect(answer.headers.connection).toBe('close');
    expect(JSON.parse(answer.body).error.code).toBe('invalid_api_key');
    expect(sent).toBeLessThan(64 * MiB);
  });

  it('sends no 100 Continue to a refused key, and one to a good key before its upload', {
    timeout: 15_000,
  }, async () => {
    const form = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart('continued')]);
    const request = (key: string) =>
      head([
        'POST /v1/files HTTP/1.1',
        'Host: x',
        'Connection: close',
        `Authorization: Bearer ${key}`,
        'Expect: 100-continue',
        `Content-Type: ${form.contentType}`,
        `Content-Length: ${form.body.length}`,
      ]);

    const refused = await connect(gw.url);
    refused.socket.write(request('sk-not-a-key-000000'));
    const { received } = await refused.closed;
    expect(received).not.toContain('100 Continue');
    expect(parseAnswer(received).status).toBe(401);

    const good = await connect(gw.url);
    good.socket.write(request(KEY));
    await eventually(async () => good.received().length > 0);
    expect(good.received()).toBe('HTTP/1.1 100 Continue\r\n\r\n');
    good.socket.write(form.body);
    const answer = parseAnswer((await good.closed).received.slice('HTTP/1.1 100 Continue\r\n\r\n'.length));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ object: 'file', filename: 'test.txt', bytes: 9 });
  });

  it('counts an upload the client abandons as 499, not 200, and logs it at info', async () => {
    const before = await scrape(gw.url);
    logLines.length = 0;
    const form = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart(Buffer.alloc(64 * 1024, 1))]);
    const ex = await connect(gw.url);
    ex.socket.write(
      head([
        'POST /v1/files HTTP/1.1',
        'Host: x',
        auth,
        `Content-Type: ${form.contentType}`,
        `Content-Length: ${form.body.length}`,
      ]),
    );
    ex.socket.write(form.body.subarray(0, form.body.length / 2));
    await eventually(async () => sampleValue(await scrape(gw.url), 'http_requests_in_flight') === 2);
    ex.socket.destroy();
    const route = { method: 'POST', route: '/v1/files' };
    let after = before;
    await eventually(async () => {
      after = await scrape(gw.url);
      return sampleValue(after, 'files_gateway_uploads_total', { outcome: 'aborted' }) > 0;
    });
    await eventually(async () => logLines.some((l) => l.msg === 'request aborted by the client'));
    after = await scrape(gw.url);
    const delta = (labels: Record<string, string>) =>
      sampleValue(after, 'http_request_duration_seconds_count', labels) -
      sampleValue(before, 'http_request_duration_seconds_count', labels);
    expect(delta({ ...route, status_code: '499' })).toBe(1);
    expect(delta({ ...route, status_code: '200' })).toBe(0);
    expect(logLines.filter((l) => l.level >= 50)).toEqual([]);
    expect(logLines.find((l) => l.msg === 'request aborted by the client')?.level).toBe(30);
  });

  it('answers headers that take too long with 408 in the envelope', { timeout: 15_000 }, async () => {
    const dataDir = await tempDir();
    const config = gatewayConfig(dataDir);
    const slow = await compose(
      { ...config, limits: { ...config.limits, headersTimeoutMs: 1000 } },
      { metrics: new GatewayMetrics({ version: 'test' }), log: pino({ level: 'silent' }) },
    );
    try {
      await slow.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = slow.app.server.address() as net.AddressInfo;
      const ex = await connect(`http://127.0.0.1:${port}`);
      ex.socket.write('GET /v1/files HTTP/1.1\r\nHost: x\r\n');
      const { received, afterMs } = await ex.closed;
      expectEnvelope(parseAnswer(received), 408);
      expect(afterMs).toBeLessThan(10_000);
    } finally {
      await slow.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
