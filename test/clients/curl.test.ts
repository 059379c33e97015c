/**
 * The real `curl` binary against the gateway, with the command lines people paste from docs and
 * runbooks: -F uploads (including a UTF-8 filename and a forced chunked body), -o downloads, -r
 * ranges, -X DELETE, -i on an error, and `curl -k $URL/alpha/files/list`. Run without a shell.
 */
import { execFile, spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { pathOf, recordRequests } from './wire-log.js';

const curlInstalled = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
const SKIP_REASON = 'SKIPPED: the curl binary is not installed (not on PATH)';
if (!curlInstalled) console.warn(`curl.test.ts: ${SKIP_REASON}`);

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

interface CurlResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

const TITLE = curlInstalled ? 'curl against the gateway' : `curl against the gateway (${SKIP_REASON})`;

describe.skipIf(!curlInstalled)(TITLE, () => {
  let gw: Gateway;
  let tmp: string;
  let wire: ReturnType<typeof recordRequests>;
  // No proxy from the environment, no ~/.curlrc: the command lines below are all curl gets.
  let env: NodeJS.ProcessEnv;

  function curl(...args: string[]): Promise<CurlResult> {
    return new Promise((resolve, reject) => {
      execFile('curl', args, { encoding: 'buffer', env, timeout: 15_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : NaN) : 0;
        if (err && Number.isNaN(code)) reject(err);
        else resolve({ code, stdout, stderr: stderr.toString('utf8') });
      });
    });
  }

  /** Runs curl, insists on exit code 0 and parses stdout as JSON. */
  async function curlJson(...args: string[]): Promise<any> {
    const res = await curl(...args);
    expect(res.code, res.stderr).toBe(0);
    return JSON.parse(res.stdout.toString('utf8'));
  }

  async function writeTemp(name: string, data: Buffer | string): Promise<string> {
    const p = path.join(tmp, name);
    await fsp.writeFile(p, data);
    return p;
  }

  beforeAll(async () => {
    gw = await startGateway();
    wire = recordRequests(gw);
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'files-gateway-curl-'));
    env = { ...process.env, HOME: tmp, CURL_HOME: tmp, XDG_CONFIG_HOME: tmp };
    for (const k of [
      'http_proxy',
      'HTTP_PROXY',
      'https_proxy',
      'HTTPS_PROXY',
      'all_proxy',
      'ALL_PROXY',
      'no_proxy',
      'NO_PROXY',
    ])
      delete env[k];
  });
  afterAll(async () => {
    wire?.stop();
    await gw?.close();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('uploads with -F purpose=assistants -F file=@path', async () => {
    // Over 1 MiB, so curl also goes through its Expect: 100-continue handshake.
    const data = Buffer.concat(Array.from({ length: 4500 }, () => ALL_BYTES));
    const file = await writeTemp('upload.bin', data);
    wire.clear();
    const f = await curlJson('-sS', '-F', 'purpose=assistants', '-F', `file=@${file}`, `${gw.url}/v1/files`);
    expect(f).toEqual({
      id: expect.stringMatching(/^file-[0-9a-f]{32}$/),
      object: 'file',
      bytes: data.length,
      created_at: expect.any(Number),
      expires_at: null,
      filename: 'upload.bin',
      purpose: 'assistants',
      status: 'processed',
      status_details: null,
    });
    const seen = wire.seen.find((r) => r.method === 'POST')!;
    expect(seen.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(seen.headers.expect).toBe('100-continue');

    const out = path.join(tmp, 'upload.out');
    const dl = await curl('-sS', `${gw.url}/v1/files/${f.id}/content`, '-o', out);
    expect(dl.code, dl.stderr).toBe(0);
    expect((await fsp.readFile(out)).equals(data)).toBe(true);
  });

  it('keeps a UTF-8 filename given with -F "file=@path;filename=naïve.txt"', async () => {
    const file = await writeTemp('plain.txt', 'naïve content\n');
    const f = await curlJson(
      '-sS',
      '-F',
      'purpose=user_data',
      '-F',
      `file=@${file};filename=naïve.txt`,
      `${gw.url}/v1/files`,
    );
    expect(f.filename).toBe('naïve.txt');
    expect(f.purpose).toBe('user_data');
    expect(f.bytes).toBe(Buffer.byteLength('naïve content\n'));
    const again = await curlJson('-sS', `${gw.url}/v1/files/${f.id}`);
    expect(again.filename).toBe('naïve.txt');
  });

  it('answers `curl -k $URL/alpha/files/list` with the JSON list', async () => {
    const file = await writeTemp('listed.txt', 'listed');
    const f = await curlJson('-sS', '-F', 'purpose=batch', '-F', `file=@${file}`, `${gw.url}/alpha/files`);
    const res = await curl('-k', `${gw.url}/alpha/files/list`);
    expect(res.code, res.stderr).toBe(0);
    const list = JSON.parse(res.stdout.toString('utf8'));
    expect(list).toMatchObject({ object: 'list', has_more: false });
    expect(list.first_id).toBe(list.data[0].id);
    expect(list.last_id).toBe(list.data.at(-1).id);
    const entry = list.data.find((x: { id: string }) => x.id === f.id);
    expect(entry).toEqual(f);
    // Newest first, as every list is by default.
    expect(list.data[0].id).toBe(f.id);
  });

  it('downloads the exact bytes with `curl $URL/v1/files/ID/content -o out`', async () => {
    const data = Buffer.concat([ALL_BYTES, Buffer.from('\r\n--x--\r\n'), ALL_BYTES]);
    const f = await curlJson(
      '-sS',
      '-F',
      'purpose=assistants',
      '-F',
      `file=@${await writeTemp('all.bin', data)}`,
      `${gw.url}/v1/files`,
    );
    const out = path.join(tmp, 'all.out');
    const res = await curl(`${gw.url}/v1/files/${f.id}/content`, '-o', out);
    expect(res.code, res.stderr).toBe(0);
    const got = await fsp.readFile(out);
    expect(got.length).toBe(data.length);
    expect(got.equals(data)).toBe(true);
  });

  it('downloads byte ranges with -r (206, Content-Range)', async () => {
    const f = await curlJson(
      '-sS',
      '-F',
      'purpose=assistants',
      '-F',
      `file=@${await writeTemp('range.bin', ALL_BYTES)}`,
      `${gw.url}/v1/files`,
    );
    const url = `${gw.url}/v1/files/${f.id}/content`;

    const first = await curl('-sS', '-r', '0-3', url);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.equals(Buffer.from([0, 1, 2, 3]))).toBe(true);

    const headers = await curl('-sS', '-r', '0-3', '-D', '-', '-o', path.join(tmp, 'range.out'), url);
    const head = headers.stdout.toString('latin1');
    expect(head).toMatch(/^HTTP\/1\.1 206 /);
    expect(head).toMatch(/\r\ncontent-range: bytes 0-3\/256\r\n/i);
    expect(head).toMatch(/\r\ncontent-length: 4\r\n/i);

    const tail = await curl('-sS', '-r', '-4', url);
    expect(tail.stdout.equals(Buffer.from([252, 253, 254, 255]))).toBe(true);
    const middle = await curl('-sS', '-r', '100-103', url);
    expect(middle.stdout.equals(Buffer.from([100, 101, 102, 103]))).toBe(true);
  });

  it("uploads with -H 'Transfer-Encoding: chunked'", async () => {
    const data = Buffer.concat(Array.from({ length: 200 }, () => ALL_BYTES));
    const file = await writeTemp('chunked.bin', data);
    wire.clear();
    const f = await curlJson(
      '-sS',
      '-H',
      'Transfer-Encoding: chunked',
      '-F',
      'purpose=batch',
      '-F',
      `file=@${file}`,
      `${gw.url}/v1/files`,
    );
    const seen = wire.seen.find((r) => r.method === 'POST')!;
    expect(seen.headers['transfer-encoding']).toBe('chunked');
    expect(seen.headers['content-length']).toBeUndefined();
    expect(f).toMatchObject({ bytes: data.length, filename: 'chunked.bin', purpose: 'batch' });
    expect(f.expires_at).toBe(f.created_at + 2_592_000);
    const res = await curl('-sS', `${gw.url}/v1/files/${f.id}/content`);
    expect(res.stdout.equals(data)).toBe(true);
  });

  it('deletes with -X DELETE, after which the file is gone', async () => {
    const f = await curlJson(
      '-sS',
      '-F',
      'purpose=assistants',
      '-F',
      `file=@${await writeTemp('gone.txt', 'gone')}`,
      `${gw.url}/v1/files`,
    );
    wire.clear();
    expect(await curlJson('-sS', '-X', 'DELETE', `${gw.url}/v1/files/${f.id}`)).toEqual({
      id: f.id,
      object: 'file',
      deleted: true,
    });
    expect(wire.seen.map((r) => [r.method, pathOf(r.url)])).toEqual([['DELETE', `/v1/files/${f.id}`]]);

    const again = await curl(
      '-sS',
      '-o',
      path.join(tmp, 'second-delete.json'),
      '-w',
      '%{http_code}',
      '-X',
      'DELETE',
      `${gw.url}/v1/files/${f.id}`,
    );
    expect(again.stdout.toString()).toBe('404');
    const list = await curlJson('-sS', `${gw.url}/v1/files`);
    expect(list.data.map((x: { id: string }) => x.id)).not.toContain(f.id);
  });

  it('shows a 404 JSON error envelope with `curl -i` on an unknown id', async () => {
    const id = 'file-0123456789abcdef0123456789abcdef';
    for (const url of [`${gw.url}/v1/files/${id}`, `${gw.url}/v1/files/${id}/content`]) {
      const res = await curl('-i', url);
      expect(res.code, res.stderr).toBe(0);
      const text = res.stdout.toString('utf8');
      const [head, body] = text.split('\r\n\r\n', 2) as [string, string];
      expect(head).toMatch(/^HTTP\/1\.1 404 Not Found/);
      expect(head).toMatch(/\r\ncontent-type: application\/json; charset=utf-8/i);
      expect(head).toMatch(/\r\nx-request-id: \S+/i);
      const envelope = JSON.parse(body);
      expect(Object.keys(envelope)).toEqual(['error']);
      expect(envelope.error).toEqual({
        message: expect.stringContaining('not found'),
        type: 'invalid_request_error',
        param: 'file_id',
        code: 'file_not_found',
      });
      expect(envelope.error.message).toContain(id);
    }
  });
});
