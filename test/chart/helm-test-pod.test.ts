/**
 * The `helm test` pod cannot run here (no cluster), but its script can: it is taken from the
 * rendered Pod and run with this machine's node against a real gateway, exactly as the pod would
 * run it with the app image's node against the Service.
 */
import { execFile } from 'node:child_process';
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
    await expect(run(process.execPath, ['-e', script()], { env: env(`${gw.url}/nope`), timeout: 30_000 })).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining('FAIL upload'),
    });
  });
});
