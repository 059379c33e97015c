/**
 * The built gateway against hostile and unlucky conditions: slow-loris clients, load shedding, a
 * full disk. Short timeouts so each case takes seconds.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../helpers/build.js';
import { deterministicBytes } from '../helpers/bytes.js';
import { filesUnder, tempDir } from '../helpers/gateway.js';
import { filePart, multipartBody, request, upload } from '../helpers/http.js';
import { serve, type Served } from '../helpers/process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** A raw socket to the gateway that resolves `closed` (with what it received) when the server cuts it. */
function rawSocket(url: string): { socket: net.Socket; closed: Promise<{ afterMs: number; received: string }> } {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  const start = Date.now();
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined);
  return {
    socket,
    closed: new Promise((resolve) => socket.on('close', () => resolve({ afterMs: Date.now() - start, received }))),
  };
}

/** Writes one byte of `text` every `everyMs` until the socket closes or the text runs out. */
async function trickle(socket: net.Socket, text: string, everyMs: number): Promise<void> {
  for (const ch of text) {
    if (socket.destroyed) return;
    socket.write(ch);
    await sleep(everyMs);
  }
}

describe('limits of the gateway process', () => {
  let dataDir: string;
  let gw: Served | undefined;
  beforeAll(async () => {
    await buildOnce();
  }, 120_000);
  afterEach(async () => {
    gw?.child.kill('SIGKILL');
    gw = undefined;
    await fs.rm(dataDir, { recursive: true, force: true });
  });
  const start = async (env: Record<string, string> = {}) => {
    dataDir = await tempDir('files-gateway-limits-');
    gw = await serve({
      FILES_DATA_DIR: dataDir,
      FILES_IDLE_TIMEOUT_SECONDS: '2',
      FILES_HEADERS_TIMEOUT_SECONDS: '2',
      ...env,
    });
    return gw;
  };

  it('cuts slow-loris headers, bodies and readers, aborts their uploads, and keeps serving others', {
    timeout: 60_000,
  }, async () => {
    const { url } = await start();
    // Headers a byte every 300 ms: never idle, but never done within the headers timeout.
    const headers = rawSocket(url);
    void trickle(headers.socket, `GET /v1/files HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(100)}\r\n\r\n`, 300);
    // A body a byte every 3 s, past the 2 s idle timeout.
    const body = rawSocket(url);
    const form = multipartBody([
      { name: 'purpose', value: 'assistants' },
      filePart(Buffer.alloc(64 * 1024, 1), 'loris.bin'),
    ]);
    body.socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: ${form.contentType}\r\nContent-Length: ${form.body.length}\r\n\r\n`,
    );
    body.socket.write(form.body.subarray(0, 32 * 1024));
    void trickle(body.socket, form.body.subarray(32 * 1024).toString('latin1'), 3000);
    // A download nobody reads: the socket buffers fill and the answer stalls (more than loopback's
    // 32 MiB receive buffer plus the send buffer can take).
    const big = await upload(url, [
      { name: 'purpose', value: 'assistants' },
      filePart(await deterministicBytes(80 * MiB), 'big.bin'),
    ]);
    expect(big.status).toBe(200);
    const reader = rawSocket(url);
    reader.socket.write(`GET /v1/files/${big.json().id}/content HTTP/1.1\r\nHost: x\r\n\r\n`);
    reader.socket.pause();

    // Meanwhile everyone else is served.
    expect((await request(`${url}/v1/files`)).status).toBe(200);
    // A paused socket cannot notice being cut: read again after the idle timeout has passed.
    await sleep(6000);
    reader.socket.resume();
    const [h, b, r] = await Promise.all([headers.closed, body.closed, reader.closed]);
    for (const cut of [h, b, r]) expect(cut.afterMs).toBeLessThan(15_000);
    expect(r.received.length).toBeLessThan(80 * MiB);
    expect(h.received).toMatch(/^HTTP\/1.1 408/);
    // the half-sent upload left nothing: no temp file, no row
    expect(await filesUnder(path.join(dataDir, 'tmp'))).toEqual([]);
    const listed = (await request(`${url}/v1/files`)).json().data as { filename: string }[];
    expect(listed.map((f) => f.filename)).toEqual(['big.bin']);
  });

  it('sheds uploads over FILES_MAX_CONCURRENT_UPLOADS with 503 and Retry-After, then takes them again', {
    timeout: 30_000,
  }, async () => {
    const { url } = await start({ FILES_MAX_CONCURRENT_UPLOADS: '2', FILES_IDLE_TIMEOUT_SECONDS: '30' });
    const stalled = [rawSocket(url), rawSocket(url)];
    const form = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart('x')]);
    for (const s of stalled)
      s.socket.write(
        `POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Type: ${form.contentType}\r\nContent-Length: ${form.body.length}\r\n\r\n`,
      );
    await sleep(300);
    const shed = await upload(url, [{ name: 'purpose', value: 'assistants' }, filePart('third')]);
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.json().error).toMatchObject({ type: 'service_unavailable', code: 'overloaded' });
    // reads are not uploads
    expect((await request(`${url}/v1/files`)).status).toBe(200);
    for (const s of stalled) s.socket.destroy();
    await sleep(300);
    expect((await upload(url, [{ name: 'purpose', value: 'assistants' }, filePart('later')])).status).toBe(200);
  });

  it('sheds everything but the probes under memory pressure', { timeout: 30_000 }, async () => {
    const { url } = await start({ FILES_MAX_HEAP_USED_BYTES: '1MiB' });
    await sleep(1500); // under-pressure samples once a second
    const shed = await request(`${url}/v1/files`);
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.json().error.code).toBe('overloaded');
    for (const probe of ['/healthz', '/readyz', '/v1/health', '/metrics'])
      expect((await request(`${url}${probe}`)).status).toBe(200);
  });

  describe('a full disk (an 8 MiB tmpfs)', () => {
    let mount: string | undefined;
    beforeAll(async () => {
      const dir = await tempDir('files-gateway-tmpfs-');
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
        mount = dir;
      } catch {
        console.warn('skipping the full-disk test: mounting a tmpfs is not permitted here (it needs root)');
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
    afterAll(async () => {
      if (!mount) return;
      execFileSync('umount', [mount]);
      await fs.rm(mount, { recursive: true, force: true });
    });

    it('answers 503 with Retry-After leaving nothing half-written, and takes uploads again once space is freed', {
      timeout: 30_000,
    }, async (ctx) => {
      if (!mount) return ctx.skip();
      // The catalog lives elsewhere: this is about the bytes' disk.
      const catalogDir = await tempDir('files-gateway-catalog-');
      dataDir = catalogDir;
      gw = await serve({ FILES_DATA_DIR: mount, FILES_CATALOG_URL: path.join(catalogDir, 'catalog.sqlite') });
      const filler = path.join(mount, 'filler');
      await fs.writeFile(filler, Buffer.alloc(5 * MiB));
      const full = await upload(gw.url, [
        { name: 'purpose', value: 'assistants' },
        filePart(Buffer.alloc(4 * MiB, 7), 'too-big.bin'),
      ]);
      expect(full.status).toBe(503);
      expect(full.headers['retry-after']).toBe('30');
      expect(full.json().error.code).toBe('insufficient_storage');
      expect(await filesUnder(path.join(mount, 'tmp'))).toEqual([]);
      expect((await filesUnder(path.join(mount, 'files'))).length).toBe(0);
      expect((await request(`${gw.url}/v1/files`)).json().data).toEqual([]);
      await fs.rm(filler);
      const fits = await upload(gw.url, [
        { name: 'purpose', value: 'assistants' },
        filePart(Buffer.alloc(4 * MiB, 7), 'fits.bin'),
      ]);
      expect(fits.status).toBe(200);
    });
  });
});
