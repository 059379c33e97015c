/**
 * Real LlamaStack servers (OGX 0.8.0, llama-stack 0.7.1) in front of the real gateway, on the fs
 * store (with API keys, a service key for LlamaStack) and on Ceph RGW (open, configured with the
 * deployment guide's remote::s3-files block plus `module:` and `base_url`). Each configuration runs
 * LlamaStack's own Files integration tests in server mode, then these checks over HTTP with curl and
 * the openai Python client.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deterministicStream } from '../helpers/bytes.js';
import { streamingDownload } from '../helpers/stream-upload.js';
import { curl, DEFAULT_KEY, SERVICE_KEY, startE2eGateway, type E2eGateway, type Store } from './gateway.js';
import {
  FLAVORS,
  installProviderWheel,
  pytestCounts,
  ROOT,
  runPython,
  sharedTemp,
  startStack,
  StackExit,
  unavailable,
  type Flavor,
  type Stack,
} from './stack.js';

const MiB = 1024 * 1024;
const skipped = unavailable();

type Provider = 's3-files' | 'remote::openai';
/** `bigRead`: this configuration reads the 1 GiB file (each server and each store once, to keep CI short). */
const CONFIGURATIONS: { flavor: Flavor; provider: Provider; store: Store; bigRead?: boolean }[] = [
  { flavor: 'ogx', provider: 's3-files', store: 'fs', bigRead: true },
  { flavor: 'llama-stack', provider: 's3-files', store: 'fs' },
  { flavor: 'ogx', provider: 'remote::openai', store: 'fs' },
  { flavor: 'ogx', provider: 's3-files', store: 'rgw' },
  { flavor: 'llama-stack', provider: 's3-files', store: 'rgw', bigRead: true },
  { flavor: 'ogx', provider: 'remote::openai', store: 'rgw' },
];

let site = '';
let work = '';
beforeAll(async () => {
  if (skipped) return;
  site = (await installProviderWheel()).site;
  work = await sharedTemp('files-gateway-e2e-work-');
  await fs.copyFile(path.join(ROOT, 'test', 'llamastack', 'openai_client.py'), path.join(work, 'openai_client.py'));
}, 180_000);
afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
  if (site) await fs.rm(path.dirname(site), { recursive: true, force: true });
});

/** The files provider entry for `provider` in front of `gw`. */
function filesProvider(
  provider: Provider,
  gw: E2eGateway,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  if (provider === 'remote::openai') {
    return {
      provider_id: 'files-gateway',
      provider_type: 'remote::openai',
      config: {
        api_key: gw.keyed ? DEFAULT_KEY : 'unused',
        metadata_store: { backend: 'sql_default', table_name: 'openai_files_metadata' },
      },
    };
  }
  if (gw.store === 'rgw') {
    // The block deployments already carry, with `module:` and `base_url` added: nothing else.
    const s3 = gw.bucket!.server;
    return {
      provider_id: 's3-files',
      provider_type: 'remote::s3-files',
      module: 'files_gateway_llamastack',
      config: {
        base_url: gw.url,
        endpoint_url: s3.endpoint,
        bucket: gw.bucket!.config().bucket,
        region: s3.region,
        tls_verify: false,
        s3_force_path_style: true,
        credentials: {
          access_key_id_from_env: 'FILES_S3_ACCESS_KEY_ID',
          secret_access_key_from_env: 'FILES_S3_SECRET_ACCESS_KEY',
        },
        ...extra,
      },
    };
  }
  return {
    provider_id: 's3-files',
    provider_type: 'remote::s3-files',
    module: 'files_gateway_llamastack',
    config: { base_url: gw.url, api_key: SERVICE_KEY, ...extra },
  };
}

function startFor(
  flavor: Flavor,
  provider: Provider,
  gw: E2eGateway,
  more: { auth?: Record<string, unknown>; extra?: Record<string, unknown> } = {},
) {
  return startStack({
    flavor,
    files: [filesProvider(provider, gw, more.extra)],
    pythonPath: [site],
    env: provider === 'remote::openai' ? { OPENAI_BASE_URL: `${gw.url}/v1` } : {},
    auth: more.auth,
  });
}

/** The openai Python client (2.30, bundled) against the stack: one action, its JSON result. */
function openaiClient(stack: Stack, args: string[], token?: string): any {
  const run = runPython([`${work}/openai_client.py`, stack.url, ...args], {
    pythonPath: ['/opt/ogx-e2e/vendor-openai2'],
    env: token ? { OPENAI_API_KEY: token } : {},
  });
  if (run.status !== 0) throw new Error(`openai_client.py ${args.join(' ')}:\n${run.output}`);
  return JSON.parse(run.stdout.trim().split('\n').pop()!);
}

async function writeShared(name: string, data: Buffer): Promise<string> {
  const file = path.join(work, name);
  await fs.writeFile(file, data);
  return file;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe.skipIf(skipped)('LlamaStack with the gateway as its files provider', () => {
  for (const { flavor, provider, store, bigRead } of CONFIGURATIONS)
    describe(`${FLAVORS[flavor].label} + ${provider}, gateway on ${store}`, () => {
      let gw: E2eGateway;
      let stack: Stack;
      const ours = provider === 's3-files';
      beforeAll(async () => {
        gw = await startE2eGateway(store, { FILES_MAX_FILE_BYTES: String(16 * MiB) });
        stack = await startFor(flavor, provider, gw);
      }, 180_000);
      afterAll(async () => {
        await stack?.stop();
        await gw?.close();
      });

      it("passes LlamaStack's own tests/integration/files in server mode", () => {
        // OGX's suite (the bundle carries it for 0.8.0), run against this server through its HTTP API.
        const run = runPython(
          [
            '-m',
            'pytest',
            'tests/integration/files',
            `--stack-config=${stack.url}`,
            '-q',
            '-p',
            'no:cacheprovider',
            '-rxX',
          ],
          {
            cwd: '/opt/ogx-e2e/ogx',
            pythonPath: ['src'],
          },
        );
        const counts = pytestCounts(run.output);
        console.log(
          `tests/integration/files on ${FLAVORS[flavor].label} + ${provider} (${store}): ${JSON.stringify(counts)}`,
        );
        expect(counts.failed ?? 0, run.output).toBe(0);
        expect(counts.error ?? 0, run.output).toBe(0);
        expect(counts.passed).toBeGreaterThanOrEqual(3);
      }, 300_000);

      it('serves the same bytes through curl and the openai client, under the id the gateway gave', async () => {
        const data = randomBytes(300_000);
        const file = await writeShared(`bytes-${flavor}-${store}.bin`, data);
        const created = JSON.parse(
          curl(['-F', 'purpose=assistants', '-F', `file=@${file};filename=report.pdf`, `${stack.url}/v1/files`]).body,
        );
        expect(created).toMatchObject({
          object: 'file',
          bytes: data.length,
          filename: 'report.pdf',
          purpose: 'assistants',
        });
        // The same id names the bytes at the gateway.
        const atGateway = await gw.call('GET', `/v1/files/${created.id}/content`);
        expect(atGateway.status).toBe(200);
        expect(sha256(Buffer.from(await atGateway.arrayBuffer()))).toBe(sha256(data));
        // And through LlamaStack, with curl and with the openai client.
        const viaCurl = await fetch(`${stack.url}/v1/files/${created.id}/content`);
        expect(sha256(Buffer.from(await viaCurl.arrayBuffer()))).toBe(sha256(data));
        expect(openaiClient(stack, ['content', created.id])).toEqual({ bytes: data.length, sha256: sha256(data) });

        const uploaded = openaiClient(stack, ['upload', file, 'batch']);
        expect(uploaded).toMatchObject({ bytes: data.length, purpose: 'batch', filename: path.basename(file) });
        const meta = await (await gw.call('GET', `/v1/files/${uploaded.id}`)).json();
        expect(meta).toMatchObject({
          id: uploaded.id,
          bytes: data.length,
          purpose: 'batch',
          filename: path.basename(file),
        });
        if (ours) expect(meta.created_at).toBe(uploaded.created_at);
        expect(openaiClient(stack, ['retrieve', uploaded.id])).toMatchObject({ id: uploaded.id, bytes: data.length });
      });

      it.runIf(ours)(
        'lists and serves files uploaded at the gateway, and the gateway sees LlamaStack uploads',
        async () => {
          const data = Buffer.from(`direct upload ${randomBytes(8).toString('hex')}`);
          const form = new FormData();
          form.append('purpose', 'assistants');
          form.append('file', new Blob([data]), 'direct.txt');
          const direct = await (await gw.call('POST', '/v1/files', { body: form })).json();
          const listed = openaiClient(stack, ['list', 'purpose=assistants', 'limit=100']);
          expect(listed.data.map((f: { id: string }) => f.id)).toContain(direct.id);
          expect(openaiClient(stack, ['retrieve', direct.id])).toMatchObject({
            id: direct.id,
            filename: 'direct.txt',
            bytes: data.length,
          });
          expect(openaiClient(stack, ['content', direct.id])).toEqual({ bytes: data.length, sha256: sha256(data) });

          const file = await writeShared(`stack-upload-${flavor}-${store}.txt`, Buffer.from('from LlamaStack'));
          const viaStack = openaiClient(stack, ['upload', file, 'assistants']);
          const gatewayList = await (await gw.call('GET', '/v1/files?limit=100&purpose=assistants')).json();
          expect(gatewayList.data.map((f: { id: string }) => f.id)).toContain(viaStack.id);
        },
      );

      it('propagates deletes both ways', async () => {
        const file = await writeShared(`delete-${flavor}-${store}.txt`, Buffer.from('to be deleted'));
        const viaStack = openaiClient(stack, ['upload', file, 'assistants']);
        expect(openaiClient(stack, ['delete', viaStack.id])).toMatchObject({ id: viaStack.id, deleted: true });
        expect((await gw.call('GET', `/v1/files/${viaStack.id}`)).status).toBe(404);
        expect((await gw.call('GET', `/v1/files/${viaStack.id}/content`)).status).toBe(404);
        if (!ours) return; // remote::openai: a delete at the gateway never reaches LlamaStack's own table
        const other = openaiClient(stack, ['upload', file, 'assistants']);
        expect((await gw.call('DELETE', `/v1/files/${other.id}`)).status).toBe(200);
        for (const action of ['retrieve', 'content', 'delete']) {
          const answer = openaiClient(stack, [action, other.id]);
          expect(answer.error.status).toBe(404);
          expect(answer.error.message).toMatch(/not found/i);
        }
        expect(openaiClient(stack, ['list', 'limit=100']).data.map((f: { id: string }) => f.id)).not.toContain(
          other.id,
        );
      });

      it.runIf(ours)('passes list parameters with the gateway semantics: after, limit, order, purpose', async () => {
        const file = await writeShared(`list-${flavor}-${store}.txt`, Buffer.from('page me'));
        for (let i = 0; i < 5; i++) {
          expect(
            curl([
              '-F',
              `purpose=${i % 2 === 0 ? 'assistants' : 'batch'}`,
              '-F',
              `file=@${file}`,
              `${stack.url}/v1/files`,
            ]).status,
          ).toBe(200);
        }
        const ids = (page: { data: { id: string }[] }) => page.data.map((f) => f.id);
        for (const order of ['asc', 'desc']) {
          for (const purpose of ['assistants', 'batch', undefined]) {
            const query = `limit=2&order=${order}${purpose ? `&purpose=${purpose}` : ''}`;
            let after: string | undefined;
            for (let pages = 0; pages < 50; pages++) {
              const q = `${query}${after ? `&after=${after}` : ''}`;
              const direct = await (await gw.call('GET', `/v1/files?${q}`)).json();
              const through = await (await fetch(`${stack.url}/v1/files?${q}`)).json();
              expect(ids(through)).toEqual(ids(direct));
              expect(through.has_more).toBe(direct.has_more);
              if (pages === 0) expect(ids(openaiClient(stack, ['list', ...q.split('&')]))).toEqual(ids(direct));
              if (!direct.has_more) break;
              after = direct.last_id;
            }
          }
        }
      });

      it('shows the expiry the gateway holds (remote::openai cannot see files made at the gateway)', async () => {
        // LlamaStack's upload route drops expires_after before any provider sees it (its own suite marks
        // that xfail), so an expiring file is made at the gateway and read through LlamaStack.
        const form = new FormData();
        form.append('purpose', 'assistants');
        form.append('expires_after[anchor]', 'created_at');
        form.append('expires_after[seconds]', '4545');
        form.append('file', new Blob([Buffer.from('expires')]), 'expiring.txt');
        const direct = await (await gw.call('POST', '/v1/files', { body: form })).json();
        expect(direct.expires_at).toBe(direct.created_at + 4545);
        if (ours) {
          expect(openaiClient(stack, ['retrieve', direct.id])).toMatchObject({
            id: direct.id,
            expires_at: direct.created_at + 4545,
          });
          const listed = openaiClient(stack, ['list', 'limit=100']).data.find(
            (f: { id: string }) => f.id === direct.id,
          );
          expect(listed.expires_at).toBe(direct.created_at + 4545);
        } else {
          expect(openaiClient(stack, ['retrieve', direct.id]).error.status).toBe(404);
        }
        const file = await writeShared(`expiry-${flavor}-${store}.txt`, Buffer.from('expires'));
        const viaStack = openaiClient(stack, ['upload', file, 'assistants', '4545']);
        const meta = await (await gw.call('GET', `/v1/files/${viaStack.id}`)).json();
        expect(viaStack.expires_at).toBe(meta.expires_at);
      });

      it.runIf(ours)('keeps the status and message of the gateway errors (404, 400, 413)', async () => {
        const missing = await fetch(`${stack.url}/v1/files/file-${'0'.repeat(32)}`);
        expect(missing.status).toBe(404);
        expect((await missing.json()).error.message).toMatch(/not found/);
        // LlamaStack's list model has no bounds on limit: the gateway's 400 is what the client gets.
        const direct = await gw.call('GET', '/v1/files?limit=0');
        expect(direct.status).toBe(400);
        const bad = await fetch(`${stack.url}/v1/files?limit=0`);
        expect(bad.status).toBe(400);
        expect(await bad.json()).toEqual(await direct.json());
        // 17 MiB against the gateway's 16 MiB limit (LlamaStack's own cap is 100 MiB).
        const big = await writeShared(`big-${flavor}-${store}.bin`, Buffer.alloc(17 * MiB, 7));
        const tooBig = curl(['-F', 'purpose=assistants', '-F', `file=@${big}`, `${stack.url}/v1/files`]);
        expect(tooBig.status).toBe(413);
        expect(JSON.parse(tooBig.body).error.message).toMatch(/16777216|16 MiB/);
      });

      it.runIf(ours && bigRead)(
        'reads a 1 GiB file, uploaded with the Uploads API, through LlamaStack with flat memory',
        async () => {
          const size = Number(process.env.FILES_TEST_LLAMASTACK_BIG_MIB ?? 1024) * MiB;
          const file = await uploadInParts(gw, size);
          // Both hops: LlamaStack and the gateway behind it, sampled while the bytes flow.
          const before = { stack: stack.rss(), gateway: gw.rss() };
          const peak = { ...before };
          const sampler = setInterval(() => {
            peak.stack = Math.max(peak.stack, stack.rss());
            peak.gateway = Math.max(peak.gateway, gw.rss());
          }, 50);
          const download = await streamingDownload(`${stack.url}/v1/files/${file.id}/content`).finally(() =>
            clearInterval(sampler),
          );
          expect(download).toEqual({ status: 200, bytes: size, sha256: file.sha256 });
          const growth = { stack: (peak.stack - before.stack) / MiB, gateway: (peak.gateway - before.gateway) / MiB };
          console.log(
            `${FLAVORS[flavor].label} (${store}): ${size / MiB} MiB read; RSS growth ${growth.stack.toFixed(1)} MiB ` +
              `(from ${(before.stack / MiB).toFixed(0)}), gateway ${growth.gateway.toFixed(1)} MiB (from ${(before.gateway / MiB).toFixed(0)})`,
          );
          expect(growth.stack).toBeLessThan(64);
          expect(growth.gateway).toBeLessThan(64);
          await gw.call('DELETE', `/v1/files/${file.id}`);
        },
        600_000,
      );
    });

  for (const flavor of Object.keys(FLAVORS) as Flavor[])
    describe(`${FLAVORS[flavor].label}: the gateway down, then back`, () => {
      let gw: E2eGateway;
      let stack: Stack;
      beforeAll(async () => {
        gw = await startE2eGateway('fs');
        stack = await startFor(flavor, 's3-files', gw);
      }, 180_000);
      afterAll(async () => {
        await stack?.stop();
        await gw?.close();
      });

      it('answers 503 with Retry-After while the gateway is down, and recovers without a restart', async () => {
        const file = await writeShared(`outage-${flavor}.txt`, Buffer.from('survives an outage'));
        const kept = openaiClient(stack, ['upload', file, 'assistants']);
        await gw.stop();
        for (const route of ['/v1/files', `/v1/files/${kept.id}`, `/v1/files/${kept.id}/content`]) {
          const res = await fetch(`${stack.url}${route}`);
          expect(res.status, route).toBe(503);
          expect(res.headers.get('retry-after')).toBe('1');
          expect((await res.json()).error.message).toMatch(/files-gateway at .* is unreachable/);
        }
        const upload = curl(['-F', 'purpose=assistants', '-F', `file=@${file}`, `${stack.url}/v1/files`]);
        expect(upload.status).toBe(503);
        await gw.restart();
        expect(openaiClient(stack, ['content', kept.id])).toEqual({ bytes: 18, sha256: sha256('survives an outage') });
        expect(openaiClient(stack, ['list']).data.map((f: { id: string }) => f.id)).toContain(kept.id);
      });
    });

  for (const flavor of Object.keys(FLAVORS) as Flavor[])
    describe(`${FLAVORS[flavor].label} authenticating its users`, () => {
      let gw: E2eGateway;
      let stack: Stack;
      let tokens: Awaited<ReturnType<typeof startTokenEndpoint>>;
      beforeAll(async () => {
        tokens = await startTokenEndpoint({
          'token-alice': 'alice',
          'token-bob': 'bob@example.com',
          'token-carol': 'Carol Smith',
        });
        gw = await startE2eGateway('fs');
        stack = await startFor(flavor, 's3-files', gw, { auth: { type: 'custom', endpoint: tokens.url } });
      }, 180_000);
      afterAll(async () => {
        await stack?.stop();
        await gw?.close();
        await tokens?.close();
      });

      it('keeps each user to their own files: list, retrieve, content and delete', async () => {
        const file = await writeShared(`alice-${flavor}.txt`, Buffer.from("alice's notes"));
        const alices = openaiClient(stack, ['upload', file, 'assistants'], 'token-alice');
        expect(alices.id, JSON.stringify(alices)).toMatch(/^file-/);
        const bob = (args: string[]) => openaiClient(stack, args, 'token-bob');
        expect(bob(['list']).data).toEqual([]);
        for (const action of ['retrieve', 'content', 'delete']) expect(bob([action, alices.id]).error.status).toBe(404);
        expect(openaiClient(stack, ['list'], 'token-alice').data.map((f: { id: string }) => f.id)).toEqual([alices.id]);
        expect(openaiClient(stack, ['content', alices.id], 'token-alice').bytes).toBe(13);
        // At the gateway the file is tenant alice's: the service key acting for alice sees it, the default tenant does not.
        expect((await gw.call('GET', `/v1/files/${alices.id}`, { tenant: 'alice' })).status).toBe(200);
        expect((await gw.call('GET', `/v1/files/${alices.id}`)).status).toBe(404);
        // A principal that is no tenant name gets a tenant of its own too.
        const carols = openaiClient(stack, ['upload', file, 'assistants'], 'token-carol');
        expect(openaiClient(stack, ['list'], 'token-alice').data.map((f: { id: string }) => f.id)).not.toContain(
          carols.id,
        );
        expect(openaiClient(stack, ['retrieve', carols.id], 'token-carol').id).toBe(carols.id);
        // Without a token LlamaStack refuses before the provider is reached.
        expect((await fetch(`${stack.url}/v1/files`)).status).toBe(401);
        expect(openaiClient(stack, ['delete', alices.id], 'token-alice')).toMatchObject({ deleted: true });
      });
    });

  describe('start-up checks', () => {
    let gw: E2eGateway;
    beforeAll(async () => {
      gw = await startE2eGateway('rgw');
    }, 120_000);
    afterAll(async () => {
      await gw?.close();
    });

    const startFailure = async (flavor: Flavor, extra: Record<string, unknown>, target = gw) => {
      const started = await startFor(flavor, 's3-files', target, { extra }).catch((err: unknown) => err);
      if (!(started instanceof StackExit)) {
        await (started as Stack).stop?.();
        throw new Error('LlamaStack started although its files provider should have refused');
      }
      return started.log;
    };

    it.for(Object.keys(FLAVORS) as Flavor[])(
      '%s refuses to start when the block names another bucket, naming both',
      async (flavor) => {
        const bucket = gw.bucket!.config().bucket;
        const log = await startFailure(flavor, { bucket: 'llama-files' });
        expect(log).toContain(
          `config.bucket is 'llama-files' but files-gateway at ${gw.url} serves bucket '${bucket}'`,
        );
      },
    );

    it('refuses to start, saying why, when the gateway does not answer', async () => {
      const log = await startFailure('ogx', { base_url: 'http://127.0.0.1:9', startup_timeout: 2 });
      expect(log).toMatch(/files-gateway at http:\/\/127\.0\.0\.1:9 is unreachable .*gave up after startup_timeout=2s/);
    });
  });
});

/**
 * LlamaStack's `custom` auth provider asks this endpoint who a token belongs to. It runs in a process
 * of its own: the checks drive the Python client synchronously, which would block an endpoint here.
 */
async function startTokenEndpoint(principals: Record<string, string>) {
  const script = `
    const principals = JSON.parse(process.env.PRINCIPALS);
    const server = require('node:http').createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const principal = principals[JSON.parse(body).api_key];
        res.writeHead(principal ? 200 : 401, { 'content-type': 'application/json' });
        res.end(JSON.stringify(principal ? { principal, attributes: {} } : { message: 'unknown token' }));
      });
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', script], {
    env: { PRINCIPALS: JSON.stringify(principals) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return {
    url: `http://127.0.0.1:${line.toString().trim()}/validate`,
    close: async () => {
      child.kill();
      await once(child, 'exit');
    },
  };
}

/** A file of `size` deterministic bytes sent to the gateway with the Uploads API in 64 MiB parts, 4 at a time. */
async function uploadInParts(gw: E2eGateway, size: number): Promise<{ id: string; sha256: string }> {
  const partBytes = 64 * MiB;
  const n = Math.ceil(size / partBytes);
  const json = async (res: Response) => {
    const body = await res.json();
    if (!res.ok) throw new Error(`${res.status}: ${JSON.stringify(body)}`);
    return body;
  };
  const upload = await json(
    await gw.call('POST', '/v1/uploads', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        bytes: size,
        filename: 'big.bin',
        mime_type: 'application/octet-stream',
        purpose: 'assistants',
      }),
    }),
  );
  const partIds: string[] = new Array(n);
  const whole = createHash('sha256');
  for (let i = 0; i < n; i += 4) {
    await Promise.all(
      Array.from({ length: Math.min(4, n - i) }, async (_, k) => {
        const index = i + k;
        const bytes = Math.min(partBytes, size - index * partBytes);
        const form = new FormData();
        const chunks: Buffer[] = [];
        for await (const c of deterministicStream(bytes, `big-${index}`).stream) chunks.push(c as Buffer);
        form.append('data', new Blob(chunks as Uint8Array<ArrayBuffer>[]));
        partIds[index] = (await json(await gw.call('POST', `/v1/uploads/${upload.id}/parts`, { body: form }))).id;
      }),
    );
  }
  for (let index = 0; index < n; index++) {
    for await (const c of deterministicStream(Math.min(partBytes, size - index * partBytes), `big-${index}`).stream)
      whole.update(c as Buffer);
  }
  const done = await json(
    await gw.call('POST', `/v1/uploads/${upload.id}/complete`, {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ part_ids: partIds }),
    }),
  );
  return { id: done.file.id, sha256: whole.digest('hex') };
}
