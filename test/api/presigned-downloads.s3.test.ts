/**
 * FILES_DOWNLOAD_REDIRECT=presigned against the real S3 server the tests start (Ceph RGW): the
 * content route answers 302 with a presigned GetObject URL, after exactly the checks a proxied
 * download makes, and what clients get by following it (node's fetch, curl -L, the openai SDK) is
 * the file, with the headers the gateway itself would have sent. The gateways here are configured
 * through the environment variables themselves (loadConfig), as a deployment would be.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../../src/compose.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { GatewayMetrics } from '../../src/metrics.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { startGateway, tempDir } from '../helpers/gateway.js';
import { filePart, multipartBody, request, type Part } from '../helpers/http.js';
import { sampleValue, scrape } from '../helpers/metrics.js';
import { createTestBucket, type TestBucket } from '../helpers/s3.js';
import { python as pythonCommand, runPython, unavailable } from '../llamastack/stack.js';

const PREFIXES = ['/v1', '/v1/openai/v1', '/alpha'];
const ALICE = 'sk-alice-0123456789';
const BOB = 'sk-bob-0123456789';
const REDIRECTS = 'files_gateway_download_redirects_total';
// Parentheses, spaces and non-ASCII: the disposition S3 is asked to send back must survive signing.
const FILENAME = 'résumé 2026 (final).bin';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

interface EnvGateway {
  url: string;
  metrics: GatewayMetrics;
  close(): Promise<void>;
}

let bucket: TestBucket;
/** The S3 variables of a deployment using the test bucket, each gateway under its own key prefix. */
let s3Env: () => Record<string, string>;
/**
 * The same S3 server behind another port, as clients might reach it through an ingress: presigned
 * URLs must be signed for this host (SigV4 signs the Host header), not for the one the gateway uses.
 */
let publicEndpoint: string;
let forwarder: net.Server;

/** A TCP forwarder to `target` on a free loopback port; resolves with its http:// endpoint. */
async function forwardTo(target: string): Promise<{ server: net.Server; endpoint: string }> {
  const { hostname, port } = new URL(target);
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  bucket = await createTestBucket({ label: 'presign' });
  const { server } = bucket;
  ({ server: forwarder, endpoint: publicEndpoint } = await forwardTo(server.endpoint));
  s3Env = () => ({
    FILES_S3_ENDPOINT: server.endpoint,
    FILES_S3_BUCKET: bucket.config().bucket,
    FILES_S3_REGION: server.region,
    FILES_S3_ACCESS_KEY_ID: server.accessKeyId,
    FILES_S3_SECRET_ACCESS_KEY: server.secretAccessKey,
    FILES_S3_FORCE_PATH_STYLE: 'true',
    FILES_S3_PREFIX: `presign-${randomBytes(4).toString('hex')}`,
    FILES_API_KEYS: `${ALICE} alice,${BOB} bob`,
  });
});
afterAll(async () => {
  forwarder?.close();
  await bucket?.destroy();
});

/** A gateway on loopback configured from `env` as `files-gateway serve` would be. */
async function startFromEnv(env: Record<string, string>, now?: () => number): Promise<EnvGateway> {
  const dataDir = await tempDir();
  const config = loadConfig({ FILES_DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', ...env });
  const metrics = new GatewayMetrics({ version: 'test' });
  const gw = await compose(config, {
    metrics,
    log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    now,
  });
  await gw.app.listen({ host: config.host, port: config.port });
  const { port } = gw.app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    metrics,
    async close() {
      await gw.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function uploadAs(gwUrl: string, key: string, data: Buffer, extra: Part[] = []): Promise<string> {
  const { body, contentType } = multipartBody([
    { name: 'purpose', value: 'assistants' },
    ...extra,
    filePart(data, FILENAME),
  ]);
  const res = await request(`${gwUrl}/v1/files`, {
    method: 'POST',
    headers: { ...auth(key), 'content-type': contentType },
    body,
  });
  expect(res.status, res.body.toString()).toBe(200);
  return res.json().id;
}

/** GET of a URL outside the gateway (no openapi check), without credentials. */
async function fetchBytes(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers, redirect: 'manual' });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/**
 * Why openai-python cannot run here (the LlamaStack tests' chroot is missing or lacks it), or
 * undefined when it can; with FILES_TEST_REQUIRE_LLAMASTACK=1 (CI) a failure instead of a skip.
 */
function pythonOpenai(): string | undefined {
  const reason =
    unavailable() ??
    (runPython(['-c', 'import openai'], { timeoutMs: 60_000 }).status === 0
      ? undefined
      : 'openai-python is not importable in the chroot');
  if (reason !== undefined && process.env.FILES_TEST_REQUIRE_LLAMASTACK === '1') throw new Error(reason);
  return reason;
}

const curlInstalled = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0;
if (!curlInstalled) console.warn('presigned-downloads.s3.test.ts: SKIPPED the curl cases: curl is not on PATH');

/** curl without ~/.curlrc or proxies from the environment; resolves with its exit code, stdout and stderr. */
function curl(...args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  const env = { PATH: process.env.PATH, HOME: '/nonexistent' };
  return new Promise((resolve, reject) => {
    execFile('curl', ['-q', ...args], { encoding: 'buffer', env, timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : Number.NaN) : 0;
      if (err && Number.isNaN(code)) reject(err);
      else resolve({ code, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

/** The header blocks curl -D wrote, one per response it read (the 302, then S3's answer). */
function headerBlocks(dump: string): Record<string, string>[] {
  return dump
    .split(/\r?\n\r?\n/)
    .filter((block) => /^HTTP\//.test(block))
    .map((block) => {
      const [status, ...lines] = block.split(/\r?\n/);
      return Object.fromEntries([
        [':status', status!.split(' ')[1]!],
        ...lines.map((l) => {
          const i = l.indexOf(':');
          return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
        }),
      ]);
    });
}

describe('presigned downloads (FILES_DOWNLOAD_REDIRECT=presigned) on S3', () => {
  const TTL = 120;
  let gw: EnvGateway;
  let data: Buffer;
  let id: string;
  /** The headers a proxied download carries, from the gateway's own HEAD answer. */
  let own: { disposition: string; etag: string };
  /** Where curl writes its downloads and header dumps. */
  let tmp: string;

  beforeAll(async () => {
    tmp = await tempDir('presign-curl-');
    gw = await startFromEnv({
      ...s3Env(),
      FILES_S3_PUBLIC_ENDPOINT: publicEndpoint,
      FILES_DOWNLOAD_REDIRECT: 'presigned',
      FILES_DOWNLOAD_URL_TTL_SECONDS: String(TTL),
    });
    data = randomBytes(256 * 1024 + 7);
    id = await uploadAs(gw.url, ALICE, data);
    // HEAD stays with the gateway: it carries no bytes, so a redirect would save nothing.
    const head = await request(`${gw.url}/v1/files/${id}/content`, { method: 'HEAD', headers: auth(ALICE) });
    expect(head.status).toBe(200);
    expect(head.headers.location).toBeUndefined();
    expect(head.headers['content-length']).toBe(String(data.length));
    own = { disposition: String(head.headers['content-disposition']), etag: String(head.headers.etag) };
    expect(own.disposition).toContain("filename*=UTF-8''r%C3%A9sum%C3%A9%202026%20%28final%29.bin");
  });
  afterAll(async () => {
    await gw?.close();
    if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  });

  it.each(PREFIXES)(
    'under %s answers 302 to a presigned URL of the public endpoint that serves the file as the gateway would',
    async (prefix) => {
      const before = sampleValue(await scrape(gw.url), REDIRECTS);
      const res = await request(`${gw.url}${prefix}/files/${id}/content`, { headers: auth(ALICE) });
      expect(res.status).toBe(302);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body.length).toBe(0);
      const location = new URL(String(res.headers.location));
      const { FILES_S3_BUCKET } = s3Env();
      expect(location.origin).toBe(new URL(publicEndpoint).origin);
      expect(location.pathname).toMatch(new RegExp(`^/${FILES_S3_BUCKET}/presign-[0-9a-f]{8}/${id}$`));
      const query = location.searchParams;
      expect(query.get('X-Amz-Expires')).toBe(String(TTL));
      expect(query.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
      expect(query.get('response-content-type')).toBe('application/octet-stream');
      expect(query.get('response-content-disposition')).toBe(own.disposition);
      // the secret never travels; only the access key id names the signer
      expect(location.href).not.toContain(bucket.server.secretAccessKey);

      // Followed without any credentials, as a client does, S3 sends the bytes and the gateway's headers.
      const got = await fetchBytes(location.href);
      expect(got.status).toBe(200);
      expect(sha256(got.body)).toBe(sha256(data));
      expect(got.headers.get('content-type')).toBe('application/octet-stream');
      expect(got.headers.get('content-disposition')).toBe(own.disposition);
      expect(got.headers.get('etag')).toBe(own.etag);
      expect(sampleValue(await scrape(gw.url), REDIRECTS)).toBe(before + 1);
    },
  );

  it("refuses what a proxied download refuses, with the same 404 envelope and no redirect: another tenant's file, an unknown id, bytes gone from the store", async () => {
    const before = sampleValue(await scrape(gw.url), REDIRECTS);
    for (const prefix of PREFIXES) {
      const bob = await request(`${gw.url}${prefix}/files/${id}/content`, { headers: auth(BOB) });
      expect(bob.status).toBe(404);
      expect(bob.headers.location).toBeUndefined();
      expect(bob.json().error).toMatchObject({ type: 'invalid_request_error', code: 'file_not_found' });
      const missing = await request(`${gw.url}${prefix}/files/file-${'0'.repeat(32)}/content`, {
        headers: auth(ALICE),
      });
      expect(missing.status).toBe(404);
      expect(missing.headers.location).toBeUndefined();
      expect(missing.json().error).toMatchObject({ type: 'invalid_request_error', code: 'file_not_found' });
    }
    const noKey = await request(`${gw.url}/v1/files/${id}/content`);
    expect(noKey.status).toBe(401);
    expect(noKey.headers.location).toBeUndefined();

    // Bytes removed behind the gateway's back: 404 (and the stale row goes), never a URL to nothing.
    const gone = await uploadAs(gw.url, ALICE, Buffer.from('soon gone'));
    const { FILES_S3_BUCKET } = s3Env();
    const key = new URL(
      String((await request(`${gw.url}/v1/files/${gone}/content`, { headers: auth(ALICE) })).headers.location),
    ).pathname.slice(`/${FILES_S3_BUCKET}/`.length);
    await bucket.client.send(new DeleteObjectCommand({ Bucket: FILES_S3_BUCKET, Key: key }));
    const stale = await request(`${gw.url}/v1/files/${gone}/content`, { headers: auth(ALICE) });
    expect(stale.status).toBe(404);
    expect(stale.headers.location).toBeUndefined();
    expect((await request(`${gw.url}/v1/files/${gone}`, { headers: auth(ALICE) })).status).toBe(404);
    // only the one redirect before the bytes went
    expect(sampleValue(await scrape(gw.url), REDIRECTS)).toBe(before + 1);
  });

  it('answers a matching If-None-Match itself with 304, as a proxied download does', async () => {
    const res = await request(`${gw.url}/v1/files/${id}/content`, {
      headers: { ...auth(ALICE), 'if-none-match': own.etag },
    });
    expect(res.status).toBe(304);
    expect(res.headers.location).toBeUndefined();
    expect(res.headers.etag).toBe(own.etag);
  });

  it('the real openai SDK (files.content) follows the redirect and gets exactly the bytes', async () => {
    for (const prefix of ['/v1', '/v1/openai/v1']) {
      const client = new OpenAI({ baseURL: `${gw.url}${prefix}`, apiKey: ALICE, maxRetries: 0 });
      const res = await client.files.content(id);
      expect(res.status).toBe(200);
      expect(res.redirected).toBe(true);
      expect(new URL(res.url).origin).toBe(new URL(publicEndpoint).origin);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(data));
      expect(res.headers.get('content-disposition')).toBe(own.disposition);
    }
  });

  // openai-python (httpx) where the LlamaStack tests' chroot is set up (scripts/llamastack-e2e.sh).
  const python = pythonOpenai();
  it.skipIf(python !== undefined)(
    `openai-python (files.content) follows the redirect too${python ? ` (SKIPPED: ${python})` : ''}`,
    async () => {
      const script = [
        'import hashlib, json, os, sys, openai',
        'client = openai.OpenAI(base_url=sys.argv[1], api_key=os.environ["OPENAI_API_KEY"], max_retries=0)',
        'res = client.files.content(sys.argv[2]).response',
        'print(json.dumps({"sha256": hashlib.sha256(res.content).hexdigest(), "url": str(res.url),',
        '    "history": [h.status_code for h in res.history], "disposition": res.headers["content-disposition"]}))',
      ].join('\n');
      // not spawnSync: the gateway answering it runs in this process
      const { command, args } = pythonCommand(['-c', script, `${gw.url}/v1`, id], { env: { OPENAI_API_KEY: ALICE } });
      const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(command, args, { timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
      });
      expect(run.code, run.stderr).toBe(0);
      const got = JSON.parse(run.stdout);
      expect(got).toMatchObject({ sha256: sha256(data), history: [302], disposition: own.disposition });
      expect(new URL(got.url).origin).toBe(new URL(publicEndpoint).origin);
    },
  );

  describe.skipIf(!curlInstalled)('curl -L', () => {
    /** `curl -L` as Alice, with `extra` arguments: its result, the body it saved and each response's headers. */
    async function curlFollowing(name: string, url: string, ...extra: string[]) {
      const out = path.join(tmp, `${name}.bin`);
      const dump = path.join(tmp, `${name}.headers`);
      const res = await curl('-sS', '-L', ...extra, '-H', `Authorization: Bearer ${ALICE}`, '-D', dump, '-o', out, url);
      if (res.code !== 0) return { res, body: Buffer.alloc(0), headers: [] };
      return { res, body: await fs.readFile(out), headers: headerBlocks(await fs.readFile(dump, 'utf8')) };
    }

    it('follows the 302 to the bytes (sha256) with the right headers, and leaves Authorization behind', async () => {
      const { res, body, headers } = await curlFollowing('whole', `${gw.url}/v1/files/${id}/content`, '-v');
      expect(res.code, res.stderr).toBe(0);
      expect(sha256(body)).toBe(sha256(data));
      const [redirect, answer, ...more] = headers;
      expect(more).toEqual([]);
      expect(redirect).toMatchObject({ ':status': '302', 'cache-control': 'no-store' });
      expect(answer).toMatchObject({
        ':status': '200',
        'content-type': 'application/octet-stream',
        'content-disposition': own.disposition,
        'content-length': String(data.length),
      });
      // curl sends the key to the gateway only: S3 is another origin (and would refuse a second
      // authentication next to the URL's signature).
      const sent = res.stderr.split('\n').filter((l) => /^> authorization:/i.test(l));
      expect(sent).toHaveLength(1);
    });

    it('sends a Range again to S3, which answers 206 with that slice', async () => {
      const url = `${gw.url}/v1/openai/v1/files/${id}/content`;
      const { res, body, headers } = await curlFollowing('range', url, '-r', '1000-5095');
      expect(res.code, res.stderr).toBe(0);
      expect(body).toEqual(data.subarray(1000, 5096));
      const [redirect, answer] = headers;
      expect(redirect![':status']).toBe('302');
      expect(answer).toMatchObject({
        ':status': '206',
        'content-range': `bytes 1000-5095/${data.length}`,
        'content-disposition': own.disposition,
      });
    });
  });
});

describe('the endpoint presigned URLs name', () => {
  it('defaults to FILES_S3_ENDPOINT; a URL signed for one host is refused on another', async () => {
    const gw = await startFromEnv({ ...s3Env(), FILES_DOWNLOAD_REDIRECT: 'presigned' });
    try {
      const data = randomBytes(1000);
      const id = await uploadAs(gw.url, ALICE, data);
      const res = await request(`${gw.url}/v1/files/${id}/content`, { headers: auth(ALICE) });
      expect(res.status).toBe(302);
      const location = new URL(String(res.headers.location));
      expect(location.origin).toBe(new URL(bucket.server.endpoint).origin);
      expect(sha256((await fetchBytes(location.href)).body)).toBe(sha256(data));
      // SigV4 signs the Host: this is why FILES_S3_PUBLIC_ENDPOINT exists
      const elsewhere = new URL(location.href);
      elsewhere.port = new URL(publicEndpoint).port;
      const refused = await fetchBytes(elsewhere.href);
      expect(refused.status).toBe(403);
      expect(refused.body.toString()).toContain('SignatureDoesNotMatch');
    } finally {
      await gw.close();
    }
  });
});

describe('presigned URL lifetime', () => {
  it('is never longer than the file: the URL expires with the file when that comes first', async () => {
    let offsetMs = 0;
    const gw = await startFromEnv(
      { ...s3Env(), FILES_DOWNLOAD_REDIRECT: 'presigned', FILES_DOWNLOAD_URL_TTL_SECONDS: '3600' },
      () => Date.now() + offsetMs,
    );
    try {
      const id = await uploadAs(gw.url, ALICE, Buffer.from('short-lived'), [
        { name: 'expires_after[anchor]', value: 'created_at' },
        { name: 'expires_after[seconds]', value: '3600' },
      ]);
      const expiresIn = async () => {
        const res = await request(`${gw.url}/v1/files/${id}/content`, { headers: auth(ALICE) });
        expect(res.status).toBe(302);
        return Number(new URL(String(res.headers.location)).searchParams.get('X-Amz-Expires'));
      };
      expect(await expiresIn()).toBeGreaterThan(3590);
      offsetMs = 3540_000;
      const left = await expiresIn();
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(60);
      // expired: the same 404 as any expired file, no URL
      offsetMs = 3601_000;
      const res = await request(`${gw.url}/v1/files/${id}/content`, { headers: auth(ALICE) });
      expect(res.status).toBe(404);
      expect(res.headers.location).toBeUndefined();
    } finally {
      await gw.close();
    }
  });

  it('S3 refuses a URL once its TTL (1 s) has passed', async () => {
    const gw = await startFromEnv({
      ...s3Env(),
      FILES_DOWNLOAD_REDIRECT: 'presigned',
      FILES_DOWNLOAD_URL_TTL_SECONDS: '1',
    });
    try {
      const id = await uploadAs(gw.url, ALICE, Buffer.from('one second'));
      const res = await request(`${gw.url}/v1/files/${id}/content`, { headers: auth(ALICE) });
      expect(res.status).toBe(302);
      const location = String(res.headers.location);
      expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('1');
      // SigV4 dates have whole seconds: past 2 s the URL is expired whatever the rounding
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const late = await fetchBytes(location);
      expect(late.status).toBe(403);
      expect(late.body.toString()).toContain('AccessDenied');
      expect(late.body.toString()).not.toContain('one second');
      // the gateway itself hands out a fresh one
      const again = await request(`${gw.url}/v1/files/${id}/content`, { headers: auth(ALICE) });
      expect(again.status).toBe(302);
      expect(String(again.headers.location)).not.toBe(location);
    } finally {
      await gw.close();
    }
  });
});

describe('without FILES_DOWNLOAD_REDIRECT', () => {
  it('proxies the bytes as before (off is the default), counting no redirect', async () => {
    const gw = await startFromEnv(s3Env());
    try {
      const data = randomBytes(70_000);
      const id = await uploadAs(gw.url, ALICE, data);
      for (const prefix of PREFIXES) {
        const res = await request(`${gw.url}${prefix}/files/${id}/content`, { headers: auth(ALICE) });
        expect(res.status).toBe(200);
        expect(res.headers.location).toBeUndefined();
        expect(sha256(res.body)).toBe(sha256(data));
      }
      const ranged = await request(`${gw.url}/v1/files/${id}/content`, {
        headers: { ...auth(ALICE), range: 'bytes=10-19' },
      });
      expect(ranged.status).toBe(206);
      expect(ranged.body).toEqual(data.subarray(10, 20));
      expect(sampleValue(await scrape(gw.url), REDIRECTS)).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('the test gateway (config defaults, an S3 store) proxies too', async () => {
    const gw = await startGateway({ s3: bucket.config({ prefix: `presign-${randomBytes(4).toString('hex')}/` }) });
    try {
      const { body, contentType } = multipartBody([{ name: 'purpose', value: 'assistants' }, filePart('proxied')]);
      const up = await request(`${gw.url}/v1/files`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
      const res = await request(`${gw.url}/v1/files/${up.json().id}/content`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe('proxied');
    } finally {
      await gw.close();
    }
  });
});

describe('presigned downloads need the S3 store', () => {
  it('the configuration refuses presigned with the fs store, naming the variable', () => {
    for (const env of [
      { FILES_DOWNLOAD_REDIRECT: 'presigned' },
      { FILES_STORE: 'fs', FILES_DOWNLOAD_REDIRECT: 'presigned' },
    ]) {
      let err: unknown;
      try {
        loadConfig(env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe('FILES_DOWNLOAD_REDIRECT');
      expect(String(err)).toMatch(/presigned needs the s3 store/);
    }
  });

  it('the gateway does not start with a store that cannot presign', async () => {
    const dataDir = await tempDir();
    try {
      const config = loadConfig({ ...s3Env(), FILES_DATA_DIR: dataDir, FILES_DOWNLOAD_REDIRECT: 'presigned' });
      await expect(
        compose(config, { log: pino({ level: 'silent' }), store: () => new FsBlobStore(dataDir) }),
      ).rejects.toThrow(/presigned downloads need a store that presigns URLs; the fs store cannot/);
    } finally {
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  });
});
