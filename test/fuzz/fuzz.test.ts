/**
 * A seeded, bounded fuzzer: malformed requests over raw sockets at the built gateway. Pass: no 5xx,
 * no crash, no temp file left, and a normal upload works afterwards. FUZZ_SEED reproduces a run,
 * FUZZ_COUNT sets its size (`npm run test:fuzz` sends 10,000).
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../helpers/build.js';
import { filesUnder, tempDir } from '../helpers/gateway.js';
import { filePart, upload } from '../helpers/http.js';
import { serve, type Served } from '../helpers/process.js';
import { seededRandom } from '../helpers/random.js';

const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const COUNT = Number(process.env.FUZZ_COUNT ?? 2000);
const PARALLEL = 16;

function requestMaker(random: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const ids = [
    'file-0123',
    '..%2F..%2Fetc%2Fpasswd',
    '%00',
    'file-%2e%2e',
    `file-${'a'.repeat(5000)}`,
    '%ff%fe',
    'file-abc%0d%0aX:y',
    '..',
    '.',
    '%2e',
    'upload_x',
    'file-0123/../../x',
  ];
  const names = [
    bytes(12).toString('latin1'),
    'a\u0000b',
    '\r\nX-Injected: 1',
    '\udc80bad',
    'é'.repeat(600),
    '../../etc/passwd',
    '',
    '"quoted"',
    '%',
  ];
  const queries = [
    'limit=-1',
    'limit=1e309',
    'limit=99999999999999999999',
    'order=sideways',
    'after=%00',
    `purpose=${'x'.repeat(3000)}`,
    'limit=1&limit=2',
    'after=file-..',
    '%zz=1',
    'limit=NaN',
  ];
  const methods = ['GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'BREW', 'G\u0000T', 'POST /x'];
  const types = [
    'application/json',
    'text/plain',
    'multipart/form-data',
    'multipart/form-data; boundary=',
    'multipart/form-data; boundary="unclosed',
    'multipart/mixed; boundary=x',
    'application/x-www-form-urlencoded',
    '\u00ff\u00fe',
  ];

  const multipart = (): { type: string; body: Buffer } => {
    const boundary = pick(['b', 'x'.repeat(200), 'with space', '--', bytes(8).toString('hex')]);
    const parts: Buffer[] = [];
    const n = Math.floor(random() * 30);
    for (let i = 0; i < n; i++) {
      const kind = random();
      const name = pick([
        'file',
        'purpose',
        'purpose',
        'expires_after[anchor]',
        'expires_after[seconds]',
        'x'.repeat(300),
        '',
      ]);
      const disposition =
        kind < 0.5
          ? `form-data; name="${name}"; filename="${pick(names)}"`
          : pick([
              `form-data; name="${name}"`,
              'form-data',
              'garbage',
              `form-data; name=${name}; filename*=UTF-8''%ff`,
            ]);
      const value =
        kind < 0.2
          ? bytes(Math.floor(random() * 70_000))
          : Buffer.from(pick(['assistants', 'batch', 'x'.repeat(70_000), '', 'created_at', '-5', '99999999999999999']));
      parts.push(
        Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n`, 'latin1'),
        value,
        Buffer.from('\r\n'),
      );
    }
    if (random() < 0.7) parts.push(Buffer.from(`--${boundary}--\r\n`));
    let body = Buffer.concat(parts);
    // truncated bodies
    if (random() < 0.3) body = body.subarray(0, Math.floor(random() * body.length));
    return { type: random() < 0.8 ? `multipart/form-data; boundary=${boundary}` : pick(types), body };
  };

  return (): Buffer => {
    const r = random();
    let method = 'GET';
    let url = '/v1/files';
    let body: Buffer = Buffer.alloc(0);
    let type: string | undefined;
    if (r < 0.4) {
      method = 'POST';
      url = pick([
        '/v1/files',
        '/v1/openai/v1/files',
        '/v1/uploads',
        `/v1/uploads/${pick(ids)}/parts`,
        `/v1/uploads/${pick(ids)}/complete`,
      ]);
      ({ type, body } = multipart());
    } else if (r < 0.6) {
      url = `${pick(['/v1/files/', '/alpha/files/', '/v1/uploads/'])}${pick(ids)}${pick(['', '/content', '/cancel', '/../..'])}`;
      method = pick(['GET', 'DELETE', 'HEAD', 'POST']);
    } else if (r < 0.75) {
      url = `/v1/files?${pick(queries)}&${pick(queries)}`;
    } else if (r < 0.85) {
      method = pick(methods);
      url = pick(['/v1/files', '*', '//v1//files', '/v1/files%', `/${'a'.repeat(9000)}`]);
    } else {
      method = 'POST';
      url = pick(['/v1/uploads', '/v1/files']);
      type = pick(types);
      body =
        random() < 0.5
          ? bytes(Math.floor(random() * 5000))
          : Buffer.from(
              pick([
                '{"bytes":-1}',
                '{"bytes":1e400,"filename":"x","purpose":"assistants","mime_type":"a/b"}',
                '{',
                'null',
                '[]',
              ]),
            );
    }
    const headers = [
      `${method} ${url} HTTP/1.1`,
      'Host: 127.0.0.1',
      `Content-Length: ${body.length}`,
      'Connection: close',
    ];
    if (type !== undefined) headers.push(`Content-Type: ${type}`);
    if (random() < 0.05) headers.push(`X-Big: ${'h'.repeat(20_000)}`);
    if (random() < 0.05) headers.push(`Range: bytes=${pick(['-', '5-1', '0-0,1-1', 'x', '99999999999999999999-'])}`);
    return Buffer.concat([Buffer.from(`${headers.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
  };
}

/** Sends one raw request and resolves to the status code it got (0: the server closed without one). */
function send(url: string, raw: Buffer): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let head = '';
    socket.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      if (head.length > 16) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.end(raw);
  });
}

describe('the gateway under malformed input', () => {
  let dataDir: string;
  let gw: Served;
  beforeAll(async () => {
    await buildOnce();
    dataDir = await tempDir('files-gateway-fuzz-');
    gw = await serve({ FILES_DATA_DIR: dataDir });
  }, 120_000);
  afterAll(async () => {
    gw?.child.kill('SIGKILL');
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it(`answers ${COUNT} malformed requests without a 5xx or a crash (FUZZ_SEED=${SEED})`, {
    timeout: 600_000,
  }, async () => {
    console.log(`fuzz: FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT}`);
    const next = requestMaker(seededRandom(SEED));
    const failures: string[] = [];
    let sent = 0;
    const worker = async () => {
      while (sent < COUNT) {
        const i = sent++;
        const raw = next();
        const status = await send(gw.url, raw);
        if (status >= 500) failures.push(`#${i} got ${status}: ${raw.subarray(0, 200).toString('latin1')}`);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    expect(failures, `FUZZ_SEED=${SEED}`).toEqual([]);
    expect(gw.child.exitCode, gw.logs.slice(-5).join('\n')).toBeNull();
    const ok = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('after the storm')]);
    expect(ok.status).toBe(200);
    expect(await filesUnder(path.join(dataDir, 'tmp'))).toEqual([]);
  });
});
