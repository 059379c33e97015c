import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, multipartBody, request, upload } from '../helpers/http.js';
import { scrape, sampleValue } from '../helpers/metrics.js';
import { eventually } from '../helpers/wait.js';

describe('health, readiness and metrics', () => {
  let gw: Gateway;
  const logLines: { level: number; msg?: string; req?: { url?: string }; url?: string }[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
        done();
      },
    });
    gw = await startGateway({ log: pino({ level: 'info' }, sink), maxFileBytes: 1024 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('answers liveness, LlamaStack health and readiness', async () => {
    expect((await request(`${gw.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await request(`${gw.url}/v1/health`)).json()).toEqual({ status: 'OK' });
    const ready = await request(`${gw.url}/readyz`);
    expect([ready.status, ready.json()]).toEqual([200, { status: 'ready' }]);
  });

  it('turns not ready when the store cannot be written, with the reason, and ready again after', async () => {
    const filesDir = path.join(gw.dataDir, 'files');
    await fs.rename(filesDir, `${filesDir}.away`);
    try {
      await new Promise((r) => setTimeout(r, 1100)); // past the readiness cache
      const down = await request(`${gw.url}/readyz`);
      expect(down.status).toBe(503);
      expect(down.headers['retry-after']).toBe('1');
      expect(down.json().problems).toEqual([expect.stringContaining('fs store')]);
      // Liveness does not depend on it: a store outage must not restart the pod.
      expect((await request(`${gw.url}/healthz`)).status).toBe(200);
    } finally {
      await fs.rename(`${filesDir}.away`, filesDir);
    }
    await new Promise((r) => setTimeout(r, 1100));
    expect((await request(`${gw.url}/readyz`)).status).toBe(200);
  });

  it('counts uploads by outcome, bytes both ways, stored totals and requests by route', async () => {
    const before = await scrape(gw.url);
    const ok = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart(Buffer.alloc(700, 1))]);
    expect(ok.status).toBe(200);
    expect((await request(`${gw.url}/v1/files/${ok.json().id}/content`)).body.length).toBe(700);
    expect(
      (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart(Buffer.alloc(2000, 1))])).status,
    ).toBe(413);
    expect((await upload(gw.url, [{ name: 'purpose', value: 'nope' }, filePart('x')])).status).toBe(400);
    await request(`${gw.url}/v1/files/file-${'0'.repeat(32)}`);
    const after = await scrape(gw.url);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);

    expect(delta('files_gateway_uploads_total', { outcome: 'completed' })).toBe(1);
    expect(delta('files_gateway_uploads_total', { outcome: 'too_large' })).toBe(1);
    expect(delta('files_gateway_uploads_total', { outcome: 'invalid' })).toBe(1);
    // 700 stored + the 1025 bytes read before the limit stopped the second upload.
    expect(delta('files_gateway_upload_bytes_received_total')).toBeGreaterThanOrEqual(700 + 1025);
    expect(delta('files_gateway_upload_bytes_received_total')).toBeLessThanOrEqual(700 + 2000);
    expect(delta('files_gateway_download_bytes_sent_total')).toBe(700);
    expect(delta('files_gateway_files_stored')).toBe(1);
    expect(delta('files_gateway_bytes_stored')).toBe(700);
    expect(
      delta('http_request_duration_seconds_count', { method: 'POST', route: '/v1/files', status_code: '200' }),
    ).toBe(1);
    expect(
      delta('http_request_duration_seconds_count', { method: 'POST', route: '/v1/files', status_code: '413' }),
    ).toBe(1);
    expect(
      delta('http_request_duration_seconds_count', { method: 'GET', route: '/v1/files/:file_id', status_code: '404' }),
    ).toBe(1);
    expect(
      delta('files_gateway_catalog_query_duration_seconds_count', { operation: 'upsert', outcome: 'success' }),
    ).toBe(1);
    expect(sampleValue(after, 'files_gateway_build_info', { version: 'test' })).toBe(1);
    // Exposed from the start, at 0 (sampleValue would read a missing series as 0 too).
    expect(after.find((s) => s.name === 'files_gateway_log_lines_dropped_total')?.value).toBe(0);
    expect(after.some((s) => s.name === 'process_resident_memory_bytes')).toBe(true);
    expect(sampleValue(after, 'http_requests_in_flight')).toBe(1); // the scrape itself
  });

  it('keeps label cardinality bounded after 1,000 different ids and unknown routes', async () => {
    for (let i = 0; i < 1000; i++) {
      const id = `file-${i.toString(16).padStart(32, '0')}`;
      await request(`${gw.url}/v1/files/${i % 2 ? id : `${id}/content`}`);
    }
    for (let i = 0; i < 50; i++) await request(`${gw.url}/no/such/route/${i}`);
    const samples = await scrape(gw.url);
    const routes = new Set(
      samples.filter((s) => s.name === 'http_request_duration_seconds_count').map((s) => s.labels.route),
    );
    expect([...routes].every((r) => r === 'unmatched' || r!.startsWith('/'))).toBe(true);
    expect([...routes].some((r) => r!.includes('file-0'))).toBe(false);
    expect(routes.has('unmatched')).toBe(true);
    expect(samples.filter((s) => s.name === 'http_request_duration_seconds_count').length).toBeLessThan(40);
  });

  it('brings the in-flight gauge back down after a client aborts mid-upload', async () => {
    const { body, contentType } = multipartBody([
      { name: 'purpose', value: 'assistants' },
      filePart(Buffer.alloc(900)),
    ]);
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length + 5000}\r\n\r\n`,
    );
    socket.write(body.subarray(0, 300));
    await eventually(async () => sampleValue(await scrape(gw.url), 'http_requests_in_flight') === 2);
    socket.destroy();
    // The scrape itself is the one request left in flight.
    await eventually(async () => sampleValue(await scrape(gw.url), 'http_requests_in_flight') === 1);
    await eventually(
      async () => sampleValue(await scrape(gw.url), 'files_gateway_uploads_total', { outcome: 'aborted' }) === 1,
    );
  });

  it('does not log probes and scrapes at info level', async () => {
    logLines.length = 0;
    for (const p of ['/healthz', '/readyz', '/metrics', '/v1/health']) await request(`${gw.url}${p}`);
    await request(`${gw.url}/v1/files?limit=1`);
    const urls = logLines.filter((l) => l.level <= 30).map((l) => l.req?.url ?? l.url ?? '');
    expect(urls.some((u) => u.startsWith('/v1/files'))).toBe(true);
    expect(urls.filter((u) => ['/healthz', '/readyz', '/metrics', '/v1/health'].includes(u))).toEqual([]);
  });
});
