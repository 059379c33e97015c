import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { buildOnce } from '../helpers/build.js';
import { filesUnder, tempDir } from '../helpers/gateway.js';
import { serve, SHIPPED_GLIBC_TUNABLES, SHIPPED_NODE_FLAGS, type Served } from '../helpers/process.js';
import { filePart, multipartBody, request, upload } from '../helpers/http.js';
import { createTestBucket, s3Server, uniqueBucketName } from '../helpers/s3.js';

const run = promisify(execFile);
const MAIN = path.resolve('dist/main.js');

describe('the files-gateway process', () => {
  let running: Served | undefined;
  beforeAll(async () => {
    await buildOnce();
  }, 120_000);
  afterEach(async () => {
    running?.child.kill('SIGKILL');
    running = undefined;
  });

  it('starts on the embedded default and says where it stores and listens', async () => {
    const dataDir = await tempDir();
    running = await serve({ FILES_DATA_DIR: dataDir });
    expect(running.startLine).toMatchObject({
      store: 'fs',
      storeLocation: dataDir,
      catalog: 'sqlite',
      catalogLocation: path.join(dataDir, 'catalog.sqlite'),
    });
    expect(running.startLine.msg).toContain(running.url);
    const res = await upload(running.url, [{ name: 'purpose', value: 'assistants' }, filePart('from a process')]);
    expect(res.status).toBe(200);
    expect((await request(`${running.url}/v1/files/${res.json().id}/content`)).body.toString()).toBe('from a process');
    const info = await request(`${running.url}/v1/files-gateway/info`);
    expect(info.json()).toMatchObject({ store: 'fs', s3: null, max_file_bytes: 512 * 1024 * 1024 });
    expect(info.body.toString()).not.toContain(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('logs a request soon after it, even while idle, and its last lines when it stops', async () => {
    const dataDir = await tempDir();
    running = await serve({ FILES_DATA_DIR: dataDir });
    const jsonLines = () =>
      running!.logs
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; req?: { url: string } });
    await request(`${running.url}/v1/files?limit=1`);
    await expect
      .poll(() => jsonLines().some((l) => l.msg === 'request completed' && l.req?.url === '/v1/files?limit=1'), {
        timeout: 2000,
        interval: 50,
      })
      .toBe(true);
    const closed = once(running.child, 'close');
    running.child.kill('SIGTERM');
    await closed;
    expect(jsonLines().map((l) => l.msg)).toContain('stopped');
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('on SIGTERM finishes the upload in flight, refuses new work, exits 0, and keeps the file', async () => {
    const dataDir = await tempDir();
    running = await serve({ FILES_DATA_DIR: dataDir, FILES_SHUTDOWN_TIMEOUT_SECONDS: '20' });
    const { body, contentType } = multipartBody([
      { name: 'purpose', value: 'assistants' },
      filePart(Buffer.alloc(1024 * 1024, 3), 'inflight.bin'),
    ]);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        `${running!.url}/v1/files`,
        { method: 'POST', headers: { 'content-type': contentType, 'content-length': body.length } },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: text }));
        },
      );
      req.on('error', reject);
      req.write(body.subarray(0, 1000));
      // The rest goes out only after the gateway was told to stop.
      setTimeout(() => {
        running!.child.kill('SIGTERM');
        setTimeout(() => req.end(body.subarray(1000)), 300);
      }, 200);
    });
    const done = await answer;
    expect(done.status).toBe(200);
    expect(await running.exited).toBe(0);
    await expect(request(`${running.url}/v1/files`)).rejects.toThrow(/ECONNREFUSED/);
    const id = JSON.parse(done.body).id;

    running = await serve({ FILES_DATA_DIR: dataDir });
    const again = await request(`${running.url}/v1/files/${id}/content`);
    expect(again.body.length).toBe(1024 * 1024);
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('reindex rebuilds a lost catalog from the folder, twice over with the same result', async () => {
    const dataDir = await tempDir();
    running = await serve({ FILES_DATA_DIR: dataDir });
    const uploaded = [
      (await upload(running.url, [{ name: 'purpose', value: 'assistants' }, filePart('one', 'ünï.txt')])).json(),
      (await upload(running.url, [filePart('two', 'b.jsonl'), { name: 'purpose', value: 'batch' }])).json(),
      (
        await upload(running.url, [
          { name: 'purpose', value: 'user_data' },
          { name: 'expires_after[anchor]', value: 'created_at' },
          { name: 'expires_after[seconds]', value: '7200' },
          filePart('three'),
        ])
      ).json(),
    ];
    running.child.kill('SIGTERM');
    await running.exited;
    await fs.rm(path.join(dataDir, 'catalog.sqlite'));

    for (let round = 0; round < 2; round++) {
      const { stdout } = await run(process.execPath, [MAIN, 'reindex'], {
        env: { PATH: process.env.PATH!, FILES_DATA_DIR: dataDir },
      });
      expect(stdout).toContain('reindex: 3 files restored');
      expect(stdout).toContain('done, 3 files');
    }
    running = await serve({ FILES_DATA_DIR: dataDir });
    const listed = (await request(`${running.url}/v1/files?order=asc`)).json().data;
    const byId = (files: any[]) => [...files].sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(byId(listed)).toEqual(byId(uploaded));
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it("`npm run serve` (what `npm start` runs after building) gives it the shipped node flags and allocator settings, or the caller's own", async () => {
    const own = 'glibc.malloc.trim_threshold=1048576';
    // Unset: the shipped ones; set: the caller's; set empty: none (glibc's defaults).
    for (const [given, expected] of [
      [undefined, SHIPPED_GLIBC_TUNABLES],
      [own, own],
      ['', undefined],
    ] as const) {
      const dataDir = await tempDir();
      const env: Record<string, string> = { FILES_DATA_DIR: dataDir, HOME: process.env.HOME ?? dataDir };
      if (given !== undefined) env.GLIBC_TUNABLES = given;
      const served = await serve(env, ['npm', 'run', '--silent', 'serve']);
      try {
        expect(served.startLine.glibcTunables, `GLIBC_TUNABLES=${given}`).toBe(expected);
        expect(served.startLine.nodeFlags).toEqual(SHIPPED_NODE_FLAGS);
      } finally {
        // npm's shell and node run below npm: stop the gateway itself, and npm exits with it.
        process.kill(Number(served.startLine.pid), 'SIGTERM');
        expect(await served.exited).toBe(0);
        await fs.rm(dataDir, { recursive: true, force: true });
      }
    }
  });

  it('refuses to start on an invalid setting and names the variable', async () => {
    for (const [name, value] of [
      ['FILES_MAX_FILE_BYTES', 'lots'],
      ['PORT', '99999'],
      ['FILES_STORE', 'floppy'],
      ['LOG_LEVEL', 'chatty'],
    ]) {
      const err = await run(process.execPath, [MAIN], { env: { PATH: process.env.PATH!, [name!]: value! } }).catch(
        (e) => e,
      );
      expect(err.code, name).toBe(2);
      expect(err.stderr, name).toContain(name);
    }
  });

  describe('on S3', () => {
    const s3Env = (bucket: string, extra: Record<string, string> = {}) => {
      const server = s3Server();
      // The deployment's own variable names, unchanged.
      return {
        FILES_S3_ENDPOINT: server.endpoint,
        FILES_S3_BUCKET: bucket,
        FILES_S3_REGION: server.region,
        FILES_S3_FORCE_PATH_STYLE: 'true',
        FILES_S3_TLS_VERIFY: 'false',
        FILES_S3_ACCESS_KEY_ID: server.accessKeyId,
        FILES_S3_SECRET_ACCESS_KEY: server.secretAccessKey,
        ...extra,
      };
    };
    const startFails = async (env: Record<string, string>) => {
      const err = await run(process.execPath, [MAIN], {
        env: { PATH: process.env.PATH!, FILES_DATA_DIR: await tempDir(), ...env },
      }).catch((e) => e);
      expect(err.code).toBe(1);
      return String(err.stderr);
    };

    it('serves from the bucket named by FILES_S3_BUCKET, and reindex reads it back', async () => {
      const bucket = await createTestBucket({ label: 'proc' });
      const dataDir = await tempDir();
      try {
        running = await serve({ FILES_DATA_DIR: dataDir, ...s3Env(bucket.config().bucket) });
        expect(running.startLine).toMatchObject({ store: 's3' });
        expect(String(running.startLine.storeLocation)).toContain(bucket.config().bucket);
        expect(running.logs.join('\n')).not.toContain(s3Server().secretAccessKey);
        // The deployment's settings, as a client reads them back; never the credentials.
        const info = await request(`${running.url}/v1/files-gateway/info`);
        expect(info.json()).toMatchObject({
          store: 's3',
          s3: {
            endpoint: s3Server().endpoint,
            bucket: bucket.config().bucket,
            region: s3Server().region,
            force_path_style: true,
            tls_verify: false,
            prefix: '',
          },
        });
        for (const secret of [s3Server().accessKeyId, s3Server().secretAccessKey])
          expect(info.body.toString()).not.toContain(secret);
        const f = (
          await upload(running.url, [filePart('on s3', 's3.txt'), { name: 'purpose', value: 'assistants' }])
        ).json();
        running.child.kill('SIGTERM');
        await running.exited;
        await fs.rm(path.join(dataDir, 'catalog.sqlite'));
        const { stdout } = await run(process.execPath, [MAIN, 'reindex'], {
          env: { PATH: process.env.PATH!, FILES_DATA_DIR: dataDir, ...s3Env(bucket.config().bucket) },
        });
        expect(stdout).toContain('done, 1 files');
        running = await serve({ FILES_DATA_DIR: dataDir, ...s3Env(bucket.config().bucket) });
        expect((await request(`${running.url}/v1/files/${f.id}`)).json()).toEqual(f);
      } finally {
        running?.child.kill('SIGKILL');
        await bucket.destroy();
        await fs.rm(dataDir, { recursive: true, force: true });
      }
    });

    it('exits with a clear message when the secret is wrong, never printing it', async () => {
      const wrong = 'definitely-not-the-secret-0000000000000';
      const stderr = await startFails(s3Env('any-bucket', { FILES_S3_SECRET_ACCESS_KEY: wrong }));
      expect(stderr).toContain(s3Server().endpoint);
      expect(stderr).toContain(s3Server().accessKeyId);
      expect(stderr).not.toContain(wrong);
    });

    it('exits naming bucket and endpoint when the bucket is missing, or creates it when asked', async () => {
      const name = uniqueBucketName('missing');
      expect(await startFails(s3Env(name))).toContain(`bucket ${name} not found at endpoint ${s3Server().endpoint}`);
      running = await serve({
        FILES_DATA_DIR: await tempDir(),
        ...s3Env(name, { FILES_S3_AUTO_CREATE_BUCKET: 'true' }),
      });
      expect((await upload(running.url, [{ name: 'purpose', value: 'assistants' }, filePart('created')])).status).toBe(
        200,
      );
    });

    it('exits saying the endpoint cannot be reached when nothing listens there', async () => {
      const stderr = await startFails(s3Env('b', { FILES_S3_ENDPOINT: 'http://127.0.0.1:9' }));
      expect(stderr).toMatch(/127\.0\.0\.1:9.*(reach|unreachable)|(reach|unreachable).*127\.0\.0\.1:9/i);
    });
  });

  it('prints usage for --help, and for each command', async () => {
    const { stdout } = await run(process.execPath, [MAIN, '--help']);
    expect(stdout).toContain('Usage: files-gateway');
    for (const command of ['serve', 'reindex', 'sweep', 'check']) {
      expect(stdout).toContain(`  ${command}`);
      const own = await run(process.execPath, [MAIN, command, '--help']);
      expect(own.stdout).toContain(`Usage: files-gateway ${command}`);
    }
    const unknown = await run(process.execPath, [MAIN, 'frobnicate']).catch((e) => e);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining("unknown command 'frobnicate'")]);
  });

  it('sweep removes expired files now and says how many', async () => {
    const dataDir = await tempDir();
    running = await serve({ FILES_DATA_DIR: dataDir });
    const doomed = (
      await upload(running.url, [
        { name: 'purpose', value: 'assistants' },
        { name: 'expires_after[anchor]', value: 'created_at' },
        { name: 'expires_after[seconds]', value: '3600' },
        filePart('doomed'),
      ])
    ).json();
    const kept = (await upload(running.url, [{ name: 'purpose', value: 'assistants' }, filePart('kept')])).json();
    running.child.kill('SIGTERM');
    await running.exited;
    // An hour passes for the doomed file.
    const db = new Database(path.join(dataDir, 'catalog.sqlite'));
    db.prepare('UPDATE files SET expires_at = ? WHERE id = ?').run(Math.floor(Date.now() / 1000) - 1, doomed.id);
    db.close();
    const env = { PATH: process.env.PATH!, FILES_DATA_DIR: dataDir };
    expect((await run(process.execPath, [MAIN, 'sweep'], { env })).stdout).toContain('sweep: removed 1 expired files');
    expect((await run(process.execPath, [MAIN, 'sweep'], { env })).stdout).toContain('sweep: removed 0 expired files');
    expect((await filesUnder(path.join(dataDir, 'files'))).filter((f) => f.endsWith(doomed.id))).toEqual([]);
    running = await serve({ FILES_DATA_DIR: dataDir });
    expect((await request(`${running.url}/v1/files`)).json().data.map((f: { id: string }) => f.id)).toEqual([kept.id]);
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('check reports configuration, store and catalog, and fails on a problem', async () => {
    const dataDir = await tempDir();
    await fs.mkdir(path.join(dataDir, 'files'));
    const env = { PATH: process.env.PATH!, FILES_DATA_DIR: dataDir };
    const good = await run(process.execPath, [MAIN, 'check'], { env });
    expect(good.stdout).toMatch(/^ok {4}configuration: /m);
    expect(good.stdout).toMatch(/^ok {4}fs store: .* answers$/m);
    expect(good.stdout).toMatch(/^ok {4}sqlite catalog: .* holds 0 files, 0 bytes$/m);
    const badConfig = await run(process.execPath, [MAIN, 'check'], {
      env: { ...env, FILES_MAX_FILE_BYTES: 'huge' },
    }).catch((e) => e);
    expect(badConfig.code).toBe(1);
    expect(badConfig.stdout).toMatch(/^FAIL {2}configuration: FILES_MAX_FILE_BYTES/m);
    const server = s3Server();
    const s3 = {
      ...env,
      FILES_S3_ENDPOINT: server.endpoint,
      FILES_S3_BUCKET: uniqueBucketName('check'),
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_ACCESS_KEY_ID: server.accessKeyId,
      FILES_S3_SECRET_ACCESS_KEY: 'wrong-secret-for-check-000000000000000',
    };
    const denied = await run(process.execPath, [MAIN, 'check'], { env: s3 }).catch((e) => e);
    expect(denied.code).toBe(1);
    expect(denied.stdout).toMatch(new RegExp(`^FAIL {2}s3 store: .*access denied.*${server.accessKeyId}`, 'm'));
    expect(denied.stdout).not.toContain('wrong-secret-for-check');
    const missing = await run(process.execPath, [MAIN, 'check'], {
      env: { ...s3, FILES_S3_SECRET_ACCESS_KEY: server.secretAccessKey },
    }).catch((e) => e);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain(`bucket ${s3.FILES_S3_BUCKET} not found at endpoint ${server.endpoint}`);
    await fs.rm(dataDir, { recursive: true, force: true });
  });
});
