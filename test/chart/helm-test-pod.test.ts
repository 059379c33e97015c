/**
 * The `helm test` pod cannot run here (no cluster), but its script can: it is taken from the
 * rendered Pod and run with this machine's node against a real gateway, exactly as the pod would
 * run it with the app image's node against the Service.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { get, render } from './render.js';
import type { Manifest } from './k8s-validate.js';

const run = promisify(execFile);

describe('helm test pod', () => {
  let m: Manifest[];
  let gw: Gateway;
  beforeAll(async () => {
    m = await render();
    gw = await startGateway();
  });
  afterAll(async () => gw?.close());

  const pod = () => get(m, 'Pod');

  it('is a helm test hook that uses the app image and its node, restricted like the app', () => {
    const p = pod();
    expect(p.metadata.annotations['helm.sh/hook']).toBe('test');
    expect(p.metadata.annotations['helm.sh/hook-delete-policy']).toContain('hook-succeeded');
    expect(p.spec.restartPolicy).toBe('Never');
    const c = p.spec.containers[0];
    expect(c.image).toBe(get(m, 'Deployment').spec.template.spec.containers[0].image);
    expect(c.command.slice(0, 2)).toEqual(['node', '-e']);
    expect(c.securityContext).toEqual(get(m, 'Deployment').spec.template.spec.containers[0].securityContext);
    expect(p.spec.securityContext).toEqual(get(m, 'Deployment').spec.template.spec.securityContext);
    expect(c.env).toContainEqual({ name: 'FILES_URL', value: 'http://rel-files-gateway.llama.svc:8080/v1' });
  });

  const script = () => pod().spec.containers[0].command[2] as string;
  const env = (url: string) => ({ PATH: process.env.PATH!, FILES_URL: url, FILES_PURPOSE: 'assistants' });

  it('uploads, lists, downloads and deletes a file against a real gateway', async () => {
    const { stdout } = await run(process.execPath, ['-e', script()], { env: env(`${gw.url}/v1`), timeout: 30_000 });
    expect(stdout).toMatch(/^POST \/files 200$/m);
    expect(stdout).toMatch(/^GET \/files\?limit=10000&order=desc 200$/m);
    expect(stdout).toMatch(/^GET \/files\/file-[0-9a-f]{32}\/content 200$/m);
    expect(stdout).toMatch(/^DELETE \/files\/file-[0-9a-f]{32} 200$/m);
    expect(stdout).toMatch(/^OK: upload, list, download, delete of file-[0-9a-f]{32}$/m);
    // It cleans up after itself.
    const list = (await (await fetch(`${gw.url}/v1/files`)).json()) as { data: unknown[] };
    expect(list.data).toEqual([]);
  });

  it('fails (non-zero exit) when the API misbehaves', async () => {
    // /nope/files does not exist: the upload gets a 404 and the pod must fail.
    await expect(
      run(process.execPath, ['-e', script()], { env: env(`${gw.url}/nope`), timeout: 30_000 }),
    ).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('FAIL upload'),
    });
  });
});

describe('helm test pod with API keys (auth.existingSecret)', () => {
  const KEY = 'sk-helm-test-2f7c9a41d0';
  const OTHER = 'sk-other-tenant-88e1b3';
  let m: Manifest[];
  let gw: Gateway;
  let tmp: string;
  beforeAll(async () => {
    m = await render({ valuesFile: 'auth-values.yaml' });
    gw = await startGateway({
      apiKeys: [
        { key: KEY, tenant: 'team-a' },
        { key: OTHER, tenant: 'team-b' },
      ],
    });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-keys-'));
  });
  afterAll(async () => {
    await gw?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const script = () => get(m, 'Pod').spec.containers[0].command[2] as string;
  /** A keys file as the Secret would hold it; the pod finds it where FILES_API_KEYS_FILE says. */
  const keysFile = (text: string) => {
    const file = path.join(tmp, `keys-${Math.random().toString(36).slice(2)}`);
    fs.writeFileSync(file, text);
    return file;
  };
  const runWith = (file: string | undefined, s = script()) =>
    run(process.execPath, ['-e', s], {
      env: {
        PATH: process.env.PATH!,
        FILES_URL: `${gw.url}/v1`,
        FILES_PURPOSE: 'assistants',
        ...(file ? { FILES_API_KEYS_FILE: file } : {}),
      },
      timeout: 30_000,
    });

  it('sends the first key of the mounted keys file as a Bearer token, and never prints it', async () => {
    const file = keysFile(
      `# API keys for files-gateway\n\n   # team A first\n${KEY}   team-a   # rotated monthly\n${OTHER} team-b\n`,
    );
    const { stdout, stderr } = await runWith(file);
    expect(stdout).toMatch(/^POST \/files 200$/m);
    expect(stdout).toMatch(/^OK: upload, list, download, delete of file-[0-9a-f]{32}$/m);
    expect(stdout + stderr).not.toContain(KEY);
    // It cleaned up after itself in team-a's files.
    const list = (await (
      await fetch(`${gw.url}/v1/files`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as { data: unknown[] };
    expect(list.data).toEqual([]);
  });

  it('fails (non-zero exit) with a wrong key, without printing it', async () => {
    const wrong = 'sk-wrong-key-0000000';
    const err = await runWith(keysFile(`${wrong} team-a\n${KEY} team-a\n`)).then(
      () => expect.fail('the script passed with a wrong key'),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(err.code).toBe(1);
    expect(err.stdout, err.stderr).toMatch(/^GET \/files\?limit=1 401$/m);
    expect(err.stdout).not.toMatch(/^POST/m);
    expect(err.stderr).toContain('FAIL the gateway refused the first key in');
    expect(err.stderr).toContain('invalid_api_key');
    expect(err.stdout + err.stderr).not.toContain(wrong);
  });

  it('fails with a keys file that holds no key, or none at all', async () => {
    await expect(runWith(keysFile('# nothing here\n\n'))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('FAIL no key in'),
    });
    await expect(runWith(path.join(tmp, 'missing'))).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^FAIL ENOENT/m),
    });
  });

  it('the script rendered without auth sends no key, so a keyed gateway refuses it', async () => {
    const open = get(await render(), 'Pod').spec.containers[0].command[2] as string;
    await expect(runWith(undefined, open)).rejects.toMatchObject({
      code: 1,
      stdout: expect.stringMatching(/^GET \/files\?limit=1 401$/m),
      stderr: expect.stringContaining('FAIL the gateway wants an API key: set auth.existingSecret'),
    });
  });
});
