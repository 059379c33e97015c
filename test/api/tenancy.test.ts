import { Writable } from 'node:stream';
import OpenAI, { AuthenticationError, NotFoundError, PermissionDeniedError, toFile } from 'openai';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { reindex } from '../../src/files/reindex.js';
import { startGateway, tempDir, type Gateway } from '../helpers/gateway.js';
import { filePart, multipartBody, request, upload, type RawResponse } from '../helpers/http.js';
import { listRecords } from '../helpers/catalog.js';

const KEY_A = 'sk-tenant-a-0123456789';
const KEY_A2 = 'sk-tenant-a-second-key';
const KEY_B = 'sk-tenant-b-0123456789';
const KEY_SHARED = 'sk-default-tenant-key';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API keys and tenant isolation', () => {
  let gw: Gateway;
  const logged: string[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, done) {
        logged.push(String(chunk));
        done();
      },
    });
    gw = await startGateway({
      log: pino({ level: 'debug' }, sink),
      apiKeys: [
        { key: KEY_A, tenant: 'team-a' },
        { key: KEY_A2, tenant: 'team-a' },
        { key: KEY_B, tenant: 'team-b' },
        { key: KEY_SHARED, tenant: '' },
      ],
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  const uploadAs = async (key: string, text: string, order: 'purpose-first' | 'file-first' = 'purpose-first') => {
    const purpose = { name: 'purpose', value: 'assistants' };
    const parts =
      order === 'purpose-first' ? [purpose, filePart(text, `${text}.txt`)] : [filePart(text, `${text}.txt`), purpose];
    const { body, contentType } = await import('../helpers/http.js').then((m) => m.multipartBody(parts));
    const res = await request(`${gw.url}/v1/files`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...auth(key) },
      body,
    });
    expect(res.status).toBe(200);
    return res.json() as { id: string; filename: string };
  };

  it('answers 401 in the OpenAI envelope without a key or with a wrong one, on Files and Uploads routes', async () => {
    const id = `file-${'a'.repeat(32)}`;
    const routes: [string, string][] = [
      ['GET', '/v1/files'],
      ['GET', '/alpha/files/list'],
      ['GET', `/v1/openai/v1/files/${id}`],
      ['GET', `/v1/files/${id}/content`],
      ['DELETE', `/v1/files/${id}`],
      ['POST', '/v1/uploads'],
      ['POST', `/v1/uploads/upload_${'a'.repeat(32)}/cancel`],
    ];
    for (const [method, path] of routes) {
      for (const headers of [
        {},
        auth('sk-wrong-key-000000'),
        { authorization: KEY_A },
        { authorization: `Basic ${KEY_A}` },
      ]) {
        const res = await request(`${gw.url}${path}`, { method, headers });
        expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.json().error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
        expect(res.headers['www-authenticate']).toContain('Bearer');
        expect(res.body.toString()).not.toContain('sk-');
      }
    }
    expect((await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('no key')])).status).toBe(401);
    // A client sending a whole upload with a wrong key hears the 401, not a reset connection.
    const wrong = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-wrong-key-000000', maxRetries: 0 });
    await expect(
      wrong.files.create({ file: await toFile(Buffer.alloc(2 * 1024 * 1024, 1), 'big.bin'), purpose: 'assistants' }),
    ).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('keeps probes, metrics and the contract open', async () => {
    for (const path of ['/healthz', '/readyz', '/v1/health', '/metrics', '/openapi.json']) {
      expect((await request(`${gw.url}${path}`)).status, path).toBe(200);
    }
  });

  it("shows each tenant only its own files: others' are absent from lists and 404 everywhere", async () => {
    const a = await uploadAs(KEY_A, 'alpha');
    const b = await uploadAs(KEY_B, 'bravo', 'file-first');
    const list = async (key: string, q = '') =>
      (await request(`${gw.url}/v1/files${q}`, { headers: auth(key) })).json().data.map((f: { id: string }) => f.id);
    expect(await list(KEY_A)).toContain(a.id);
    expect(await list(KEY_A)).not.toContain(b.id);
    expect(await list(KEY_B)).toEqual([b.id]);
    // A second key of the same tenant sees the same files; the default tenant sees neither.
    expect(await list(KEY_A2)).toContain(a.id);
    expect(await list(KEY_SHARED)).not.toContain(a.id);
    expect(await list(KEY_SHARED)).not.toContain(b.id);

    for (const [method, path] of [
      ['GET', `/v1/files/${a.id}`],
      ['GET', `/v1/files/${a.id}/content`],
      ['HEAD', `/v1/files/${a.id}/content`],
      ['DELETE', `/v1/files/${a.id}`],
    ] as const) {
      const res = await request(`${gw.url}${path}`, { method, headers: auth(KEY_B) });
      expect(res.status, `${method} ${path}`).toBe(404);
      if (method !== 'HEAD') expect(res.json().error.message).toContain('not found');
    }
    // Still there for its owner, after B's delete attempt.
    expect((await request(`${gw.url}/v1/files/${a.id}/content`, { headers: auth(KEY_A2) })).body.toString()).toBe(
      'alpha',
    );
    // A cursor naming another tenant's file reveals nothing: it is only a position in time.
    const page = (await request(`${gw.url}/v1/files?after=${a.id}`, { headers: auth(KEY_B) })).json();
    expect(page.data.map((f: { id: string }) => f.id)).not.toContain(a.id);
  });

  it('keeps uploads apart too: another tenant cannot add parts to, complete or cancel them', async () => {
    const created = await request(`${gw.url}/v1/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(KEY_A) },
      body: JSON.stringify({ bytes: 5, filename: 'x.txt', mime_type: 'text/plain', purpose: 'assistants' }),
    });
    expect(created.status).toBe(200);
    const id = created.json().id;
    for (const action of ['cancel', 'complete']) {
      const res = await request(`${gw.url}/v1/uploads/${id}/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth(KEY_B) },
        body: action === 'complete' ? JSON.stringify({ part_ids: [] }) : '',
      });
      expect(res.status, action).toBe(404);
    }
    const sdkA = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_A, maxRetries: 0 });
    const sdkB = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    await expect(
      sdkB.uploads.parts.create(id, { data: await toFile(Buffer.from('hello'), 'p') }),
    ).rejects.toBeInstanceOf(NotFoundError);
    const part = await sdkA.uploads.parts.create(id, { data: await toFile(Buffer.from('hello'), 'p') });
    const done = await sdkA.uploads.complete(id, { part_ids: [part.id] });
    expect(done.status).toBe('completed');
    // The file it became belongs to the same tenant.
    await expect(sdkB.files.retrieve(done.file!.id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await sdkA.files.retrieve(done.file!.id)).bytes).toBe(5);
  });

  it("passes LlamaStack's user-isolation test (expected to fail upstream) with the real openai SDK", async () => {
    const user1 = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_A, maxRetries: 0 });
    const user2 = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY_B, maxRetries: 0 });
    const f1 = await user1.files.create({
      file: await toFile(Buffer.from('user1 content'), 'user1.txt'),
      purpose: 'assistants',
    });
    const f2 = await user2.files.create({
      file: await toFile(Buffer.from('user2 content'), 'user2.txt'),
      purpose: 'assistants',
    });
    const ids = async (c: OpenAI) => {
      const out: string[] = [];
      for await (const f of c.files.list()) out.push(f.id);
      return out;
    };
    expect(await ids(user1)).toContain(f1.id);
    expect(await ids(user1)).not.toContain(f2.id);
    expect(await ids(user2)).toContain(f2.id);
    expect(await ids(user2)).not.toContain(f1.id);
    for (const attempt of [
      () => user2.files.retrieve(f1.id),
      () => user2.files.content(f1.id),
      () => user2.files.delete(f1.id),
    ]) {
      await expect(attempt()).rejects.toThrow(/not found/);
    }
    expect(await (await user1.files.content(f1.id)).text()).toBe('user1 content');
    expect((await user1.files.delete(f1.id)).deleted).toBe(true);
    expect((await user2.files.delete(f2.id)).deleted).toBe(true);
  });

  it('never writes a key to the log', async () => {
    await request(`${gw.url}/v1/files`, { headers: auth('sk-this-one-is-wrong-123') });
    await request(`${gw.url}/v1/files`, { headers: auth(KEY_A) });
    const text = logged.join('');
    expect(text).toContain('/v1/files'); // the requests were logged...
    for (const key of [KEY_A, KEY_A2, KEY_B, KEY_SHARED, 'sk-this-one-is-wrong-123']) expect(text).not.toContain(key); // ...their keys were not
  });

  it('restores tenancy with reindex, from both metadata forms', async () => {
    const a = await uploadAs(KEY_A, 'reindexed-a', 'file-first');
    const b = await uploadAs(KEY_B, 'reindexed-b', 'purpose-first');
    const fresh = new SqliteCatalog(`${await tempDir()}/fresh.sqlite`);
    await fresh.init();
    try {
      await reindex(gw.store, fresh);
      expect((await fresh.get(a.id))?.tenant).toBe('team-a');
      expect((await fresh.get(b.id))?.tenant).toBe('team-b');
      const listB = await listRecords(fresh, { tenant: 'team-b', order: 'asc', limit: 100, now: 0 });
      expect(listB.map((f) => f.id)).toContain(b.id);
      expect(listB.map((f) => f.id)).not.toContain(a.id);
    } finally {
      await fresh.close();
    }
  });
});

describe('service keys and the OpenAI-Project header', () => {
  const SERVICE = 'sk-llamastack-0123456789';
  const ALICE = 'sk-alice-own-0123456789';
  const BOB = 'sk-bob-own-0123456789';
  const DEFAULT = 'sk-default-tenant-0123';
  const as = (key: string, project?: string) => ({
    ...auth(key),
    ...(project === undefined ? {} : { 'openai-project': project }),
  });
  let gw: Gateway;
  let open: Gateway;
  beforeAll(async () => {
    [gw, open] = await Promise.all([
      startGateway({
        apiKeys: [
          { key: SERVICE, tenant: '', service: true },
          { key: ALICE, tenant: 'alice' },
          { key: BOB, tenant: 'bob' },
          { key: DEFAULT, tenant: '' },
        ],
      }),
      startGateway(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([gw?.close(), open?.close()]);
  });

  const uploadAs = async (headers: Record<string, string>, text: string, on = gw) => {
    const { body, contentType } = multipartBody([
      { name: 'purpose', value: 'assistants' },
      filePart(text, `${text}.txt`),
    ]);
    const res = await request(`${on.url}/v1/files`, {
      method: 'POST',
      headers: { ...headers, 'content-type': contentType },
      body,
    });
    expect(res.status, res.body.toString()).toBe(200);
    return res.json() as { id: string };
  };
  const listAs = async (headers: Record<string, string>, on = gw) => {
    const res = await request(`${on.url}/v1/files`, { headers });
    expect(res.status, res.body.toString()).toBe(200);
    return res.json().data.map((f: { id: string }) => f.id) as string[];
  };
  const expectRefused = (res: RawResponse, status: 400 | 403, code: string) => {
    expect(res.status, res.body.toString()).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const { error } = res.json();
    expect(error).toMatchObject({ type: status === 403 ? 'permission_error' : 'invalid_request_error', code });
    for (const key of [SERVICE, ALICE, BOB, DEFAULT]) expect(res.body.toString()).not.toContain(key);
    return error as { message: string; param: string | null };
  };

  it("acts for the tenant it names: bob's requests neither list nor reach alice's file", async () => {
    const a = await uploadAs(as(SERVICE, 'alice'), 'for-alice');
    expect(await listAs(as(SERVICE, 'alice'))).toContain(a.id);
    expect(await listAs(as(SERVICE, 'bob'))).not.toContain(a.id);
    for (const [method, path] of [
      ['GET', `/v1/files/${a.id}`],
      ['GET', `/v1/files/${a.id}/content`],
      ['HEAD', `/v1/files/${a.id}/content`],
      ['DELETE', `/v1/files/${a.id}`],
      ['GET', `/v1/openai/v1/files/${a.id}`],
      ['GET', `/alpha/files/${a.id}/content`],
    ] as const) {
      const res = await request(`${gw.url}${path}`, { method, headers: as(SERVICE, 'bob') });
      expect(res.status, `${method} ${path}`).toBe(404);
    }
    // Still there for alice after bob's delete, through the real openai SDK's `project` option.
    const forAlice = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: SERVICE, project: 'alice', maxRetries: 0 });
    expect(await (await forAlice.files.content(a.id)).text()).toBe('for-alice');
    const forBob = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: SERVICE, project: 'bob', maxRetries: 0 });
    await expect(forBob.files.retrieve(a.id)).rejects.toBeInstanceOf(NotFoundError);
    // Nor does the default tenant (the service key without the header) see it.
    expect(await listAs(auth(SERVICE))).not.toContain(a.id);
  });

  it("is the same tenant as alice's own key: each sees the other's files", async () => {
    const byService = await uploadAs(as(SERVICE, 'alice'), 'service-side');
    const byAlice = await uploadAs(auth(ALICE), 'alice-side');
    for (const headers of [auth(ALICE), as(SERVICE, 'alice'), as(ALICE, 'alice')]) {
      expect(await listAs(headers)).toEqual(expect.arrayContaining([byService.id, byAlice.id]));
    }
    expect(
      (await request(`${gw.url}/v1/files/${byAlice.id}/content`, { headers: as(SERVICE, 'alice') })).body.toString(),
    ).toBe('alice-side');
    expect(
      (await request(`${gw.url}/v1/files/${byService.id}/content`, { headers: auth(ALICE) })).body.toString(),
    ).toBe('service-side');
    expect(await listAs(auth(BOB))).not.toContain(byService.id);
  });

  it('lets an ordinary key name only its own tenant: another is a 403, before the body is read', async () => {
    // Its own tenant: a no-op.
    expect((await request(`${gw.url}/v1/files`, { headers: as(ALICE, 'alice') })).status).toBe(200);
    const before = await listAs(auth(BOB));
    for (const [key, project] of [
      [ALICE, 'bob'],
      [BOB, 'alice'],
      [DEFAULT, 'alice'],
    ] as const) {
      for (const [method, path] of [
        ['GET', '/v1/files'],
        ['GET', '/alpha/files/list'],
        ['GET', `/v1/openai/v1/files/file-${'a'.repeat(32)}`],
        ['DELETE', `/v1/files/file-${'a'.repeat(32)}`],
        ['POST', '/v1/uploads'],
        ['GET', '/v1/files-gateway/info'],
      ] as const) {
        const error = expectRefused(
          await request(`${gw.url}${path}`, { method, headers: as(key, project) }),
          403,
          'project_not_allowed',
        );
        expect(error.param).toBeNull();
        expect(error.message).toContain('only a service key');
      }
    }
    // An upload sent anyway is refused whole, and its client hears the 403, not a reset connection.
    const sdk = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: ALICE, project: 'bob', maxRetries: 0 });
    await expect(
      sdk.files.create({ file: await toFile(Buffer.alloc(2 * 1024 * 1024, 1), 'big.bin'), purpose: 'assistants' }),
    ).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(await listAs(auth(BOB))).toEqual(before);
  });

  it('answers 400 to an OpenAI-Project that is no tenant name, repeating at most 64 of its characters', async () => {
    const long = `${'x'.repeat(64)}${'y'.repeat(100)}`;
    for (const [key, value] of [
      [SERVICE, 'bad/tenant'],
      [SERVICE, 'alice bob'],
      [SERVICE, 'a'.repeat(65)],
      [SERVICE, long],
      [ALICE, 'al!ce'],
    ] as const) {
      const error = expectRefused(
        await request(`${gw.url}/v1/files`, { headers: as(key, value) }),
        400,
        'invalid_project',
      );
      expect(error.param).toBe('OpenAI-Project');
      expect(error.message).toContain('OpenAI-Project');
      expect(error.message).toContain('1-64 of A-Z a-z 0-9 . _ : @ -');
      expect(error.message).not.toContain('y');
    }
    // The header twice (which node joins with ", ") names no tenant either.
    const twice = await request(`${gw.url}/v1/files`, {
      headers: { ...auth(SERVICE), 'openai-project': ['alice', 'bob'] as unknown as string },
    });
    expectRefused(twice, 400, 'invalid_project');
    // The key is checked first: without a valid one, the header earns a 401 whatever it says.
    for (const headers of [
      { 'openai-project': 'alice' },
      { 'openai-project': 'bad/tenant' },
      as('sk-wrong-key-000000', 'alice'),
    ]) {
      expect((await request(`${gw.url}/v1/files`, { headers })).status).toBe(401);
    }
  });

  it('is the default tenant without the header (or with an empty one)', async () => {
    const shared = await uploadAs(auth(DEFAULT), 'default-tenant');
    expect(await listAs(auth(SERVICE))).toContain(shared.id);
    expect(await listAs(as(SERVICE, ''))).toContain(shared.id);
    expect((await request(`${gw.url}/v1/files/${shared.id}`, { headers: auth(SERVICE) })).status).toBe(200);
    expect(await listAs(as(SERVICE, 'alice'))).not.toContain(shared.id);
    const own = await uploadAs(auth(SERVICE), 'service-default');
    expect(await listAs(auth(DEFAULT))).toContain(own.id);
  });

  it('refuses the header on a gateway without keys (403): an open gateway isolates nobody', async () => {
    const f = await uploadAs({}, 'open', open);
    for (const [method, path] of [
      ['GET', '/v1/files'],
      ['GET', `/v1/files/${f.id}`],
      ['POST', '/v1/uploads'],
      ['GET', '/v1/files-gateway/info'],
    ] as const) {
      const error = expectRefused(
        await request(`${open.url}${path}`, { method, headers: { 'openai-project': 'alice' } }),
        403,
        'project_not_allowed',
      );
      expect(error.message).toContain('no API keys configured');
    }
    expectRefused(
      await request(`${open.url}/v1/files`, { headers: { 'openai-project': 'bad/tenant' } }),
      400,
      'invalid_project',
    );
    expect(await listAs({}, open)).toContain(f.id);
    expect(await listAs({ 'openai-project': '' }, open)).toContain(f.id);
    // What the SDKs send there without a project: an Authorization header, ignored.
    expect(await listAs(auth('sk-anything-at-all'), open)).toContain(f.id);
  });

  it('keeps uploads to the tenant named: another cannot add parts to, complete or cancel them', async () => {
    const created = await request(`${gw.url}/v1/uploads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...as(SERVICE, 'alice') },
      body: JSON.stringify({ bytes: 5, filename: 'parts.txt', mime_type: 'text/plain', purpose: 'assistants' }),
    });
    expect(created.status).toBe(200);
    const id = created.json().id as string;
    const forAlice = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: SERVICE, project: 'alice', maxRetries: 0 });
    const forBob = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: SERVICE, project: 'bob', maxRetries: 0 });
    await expect(
      forBob.uploads.parts.create(id, { data: await toFile(Buffer.from('hello'), 'p') }),
    ).rejects.toBeInstanceOf(NotFoundError);
    const part = await forAlice.uploads.parts.create(id, { data: await toFile(Buffer.from('hello'), 'p') });
    await expect(forBob.uploads.complete(id, { part_ids: [part.id] })).rejects.toBeInstanceOf(NotFoundError);
    await expect(forBob.uploads.cancel(id)).rejects.toBeInstanceOf(NotFoundError);
    // The default tenant (no header) is not alice either.
    const complete = await request(`${gw.url}/v1/uploads/${id}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth(SERVICE) },
      body: JSON.stringify({ part_ids: [part.id] }),
    });
    expect(complete.status).toBe(404);
    const done = await forAlice.uploads.complete(id, { part_ids: [part.id] });
    expect(done.status).toBe('completed');
    // The file it became is alice's, whichever of her keys asks.
    expect(
      (await request(`${gw.url}/v1/files/${done.file!.id}/content`, { headers: auth(ALICE) })).body.toString(),
    ).toBe('hello');
    await expect(forBob.files.retrieve(done.file!.id)).rejects.toBeInstanceOf(NotFoundError);
  });
});
