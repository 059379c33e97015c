/**
 * What the gateway accepts as input: JSON bodies with exactly their declared types (no coercion,
 * while the query string still reads numbers), and one filename rule for the Files and Uploads APIs.
 * Over real sockets; every answer is also checked against openapi.yaml by the request helper.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { multipartBody, request, type RawResponse } from '../helpers/http.js';

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  await gw?.close();
});

const postJson = (path: string, body: unknown) =>
  request(`${gw.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

function expectError(res: RawResponse, code: string, param: string | null) {
  expect(res.status, res.body.toString()).toBe(400);
  const { error } = res.json();
  expect({ code: error.code, param: error.param, type: error.type }).toEqual({
    code,
    param,
    type: 'invalid_request_error',
  });
}

const valid = { bytes: 4, filename: 'f.txt', mime_type: 'text/plain', purpose: 'assistants' };

async function createUpload(fields: Record<string, unknown> = {}) {
  const res = await postJson('/v1/uploads', { ...valid, ...fields });
  expect(res.status, res.body.toString()).toBe(200);
  return res.json();
}

async function addPart(uploadId: string, data: Buffer) {
  const { body, contentType } = multipartBody([{ name: 'data', filename: 'chunk', data }]);
  const res = await request(`${gw.url}/v1/uploads/${uploadId}/parts`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  });
  expect(res.status, res.body.toString()).toBe(200);
  return res.json().id as string;
}

/** A Files API upload whose Content-Disposition is sent as these exact bytes. */
function uploadWithDisposition(disposition: Buffer): Promise<RawResponse> {
  const b = 'strict-input-boundary';
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n`),
    Buffer.from(`--${b}\r\nContent-Disposition: `),
    disposition,
    Buffer.from(`\r\nContent-Type: application/octet-stream\r\n\r\nbytes\r\n--${b}--\r\n`),
  ]);
  return request(`${gw.url}/v1/files`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${b}` },
    body,
  });
}

const withFilename = (name: Buffer) =>
  Buffer.concat([Buffer.from('form-data; name="file"; filename="'), name, Buffer.from('"')]);

async function listedFilenames(): Promise<Map<string, string>> {
  const res = await request(`${gw.url}/v1/files?limit=10000`);
  expect(res.status).toBe(200);
  return new Map(res.json().data.map((f: { id: string; filename: string }) => [f.id, f.filename]));
}

describe('JSON bodies are strict', () => {
  it.each([
    ['bytes', null],
    ['bytes', true],
    ['bytes', [10]],
    ['bytes', '10'],
    ['bytes', 4.5],
    ['filename', 12],
    ['filename', null],
    ['filename', ['f.txt']],
    ['mime_type', 5],
    ['mime_type', ['text/plain']],
    ['purpose', 1],
    ['purpose', ['assistants']],
  ])('refuses %s: %j on create instead of coercing it', async (field, value) => {
    expectError(await postJson('/v1/uploads', { ...valid, [field]: value }), 'invalid_request', field);
  });

  it('refuses expires_after.seconds sent as a string', async () => {
    const res = await postJson('/v1/uploads', { ...valid, expires_after: { anchor: 'created_at', seconds: '3600' } });
    expectError(res, 'invalid_request', 'expires_after.seconds');
  });

  it('refuses part_ids that are not an array of strings, and the upload stays pending', async () => {
    const upload = await createUpload();
    const part = await addPart(upload.id, Buffer.from('abcd'));
    const complete = (body: unknown) => postJson(`/v1/uploads/${upload.id}/complete`, body);
    expectError(await complete({ part_ids: part }), 'invalid_request', 'part_ids');
    expectError(await complete({ part_ids: [[part]] }), 'invalid_request', 'part_ids.0');
    expectError(await complete({ part_ids: null }), 'invalid_request', 'part_ids');
    expectError(await complete({ part_ids: [part], md5: 12 }), 'invalid_request', 'md5');
    const done = await complete({ part_ids: [part] });
    expect(done.status, done.body.toString()).toBe(200);
    expect(done.json()).toMatchObject({ status: 'completed', file: { bytes: 4 } });
  });

  it('still reads numbers from the query string', async () => {
    await uploadWithDisposition(withFilename(Buffer.from('q1.txt')));
    await uploadWithDisposition(withFilename(Buffer.from('q2.txt')));
    const page = await request(`${gw.url}/v1/files?limit=1`);
    expect(page.status, page.body.toString()).toBe(200);
    expect(page.json().data).toHaveLength(1);
    expect(page.json().has_more).toBe(true);
    const ten = await request(`${gw.url}/v1/files?limit=10`);
    expect(ten.status, ten.body.toString()).toBe(200);
    expectError(await request(`${gw.url}/v1/files?limit=ten`), 'invalid_request', 'limit');
  });
});

describe('filenames: one rule for the Files and Uploads APIs', () => {
  it.each([
    ['a lone high surrogate', '\ud800.txt'],
    ['a lone low surrogate', 'a\udc00.txt'],
    ['a reversed pair', '\udc00\ud800.txt'],
    ['U+FFFD', 'a\ufffd.txt'],
  ])('refuses %s in an Uploads API filename', async (_what, filename) => {
    const res = await postJson('/v1/uploads', { ...valid, filename });
    expectError(res, 'invalid_filename', 'filename');
  });

  it('returns an astral filename identically from create, complete, retrieve and list', async () => {
    const name = '🚀 résumé 履歴書 𝄞.txt';

    const upload = await createUpload({ filename: name });
    expect(upload.filename).toBe(name);
    const part = await addPart(upload.id, Buffer.from('data'));
    const completed = (await postJson(`/v1/uploads/${upload.id}/complete`, { part_ids: [part] })).json();
    expect([completed.filename, completed.file.filename]).toEqual([name, name]);
    const again = (await postJson(`/v1/uploads/${upload.id}/complete`, { part_ids: [part] })).json();
    expect(again.file.filename).toBe(name);

    const posted = await uploadWithDisposition(withFilename(Buffer.from(name)));
    expect(posted.status, posted.body.toString()).toBe(200);
    expect(posted.json().filename).toBe(name);

    const listed = await listedFilenames();
    for (const id of [completed.file.id, posted.json().id]) {
      expect((await request(`${gw.url}/v1/files/${id}`)).json().filename).toBe(name);
      expect(listed.get(id)).toBe(name);
      const content = await request(`${gw.url}/v1/files/${id}/content`);
      const encoded = String(content.headers['content-disposition']).split("filename*=UTF-8''")[1]!;
      expect(decodeURIComponent(encoded)).toBe(name);
    }
  });

  it.each([
    ['an invalid UTF-8 byte', withFilename(Buffer.from([0x61, 0xff, 0xfe, 0x2e, 0x74]))],
    ['a UTF-8-encoded surrogate', withFilename(Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x2e, 0x74]))],
    ['a truncated sequence', withFilename(Buffer.from([0x61, 0xf0, 0x9f, 0x2e, 0x74]))],
    ['an invalid percent-encoded filename*', Buffer.from(`form-data; name="file"; filename*=utf-8''a%FF.txt`)],
    ['U+FFFD sent as valid UTF-8', withFilename(Buffer.from('a\ufffd.txt'))],
  ])('refuses a Files API filename with %s, and keeps nothing', async (_what, disposition) => {
    const before = await listedFilenames();
    expectError(await uploadWithDisposition(disposition), 'invalid_filename', 'file');
    expect(await listedFilenames()).toEqual(before);
  });
});
