import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
const SERVICE = 'sk-llamastack-0123456789';
const ALICE = 'sk-alice-own-0123456789';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('GET /v1/files-gateway/info', () => {
  let open: Gateway;
  let keyed: Gateway;
  beforeAll(async () => {
    [open, keyed] = await Promise.all([
      startGateway({ maxFileBytes: 12_345 }),
      startGateway({
        apiKeys: [
          { key: SERVICE, tenant: '', service: true },
          { key: ALICE, tenant: 'alice' },
        ],
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([open?.close(), keyed?.close()]);
  });

  it('reports the fs store without its folder, the version and the file size limit', async () => {
    const res = await request(`${open.url}/v1/files-gateway/info`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({
      object: 'files_gateway.info',
      version: PACKAGE_VERSION,
      store: 'fs',
      s3: null,
      max_file_bytes: 12_345,
      caller: { tenant: '', service: false },
    });
    expect(res.body.toString()).not.toContain(open.dataDir);
  });

  it('is served under /v1 only', async () => {
    for (const path of ['/alpha/files-gateway/info', '/v1/openai/v1/files-gateway/info']) {
      const res = await request(`${open.url}${path}`);
      expect(res.status, path).toBe(404);
      expect(res.json().error.code).toBe('route_not_found');
    }
  });

  it('needs a key when keys are configured, and tells the caller who it is', async () => {
    for (const headers of [{}, auth('sk-wrong-key-000000')]) {
      const res = await request(`${keyed.url}/v1/files-gateway/info`, { headers });
      expect(res.status).toBe(401);
      expect(res.json().error.code).toBe('invalid_api_key');
    }
    const callerOf = async (headers: Record<string, string>) => {
      const res = await request(`${keyed.url}/v1/files-gateway/info`, { headers });
      expect(res.status, res.body.toString()).toBe(200);
      expect(res.json()).toMatchObject({ object: 'files_gateway.info', store: 'fs', s3: null });
      return res.json().caller;
    };
    expect(await callerOf({ ...auth(SERVICE), 'openai-project': 'alice' })).toEqual({ tenant: 'alice', service: true });
    expect(await callerOf({ ...auth(SERVICE), 'openai-project': 'bob' })).toEqual({ tenant: 'bob', service: true });
    expect(await callerOf(auth(SERVICE))).toEqual({ tenant: '', service: true });
    expect(await callerOf(auth(ALICE))).toEqual({ tenant: 'alice', service: false });
    expect(await callerOf({ ...auth(ALICE), 'openai-project': 'alice' })).toEqual({ tenant: 'alice', service: false });
  });
});
