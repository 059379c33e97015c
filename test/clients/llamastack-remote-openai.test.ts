/**
 * LlamaStack >= 0.4 with `provider_type: remote::openai` and OPENAI_BASE_URL pointing here: its
 * files provider calls this gateway through the OpenAI *Python* SDK (httpx underneath). No Python
 * runs in these tests, so the requests are rebuilt byte for byte as that stack sends them:
 *
 *   upload:  client.files.create(file=BytesIO(content) with .name = filename, purpose=purpose.value)
 *            httpx multipart: data fields before files, boundary = 32 hex digits, the data field
 *            without Content-Type, the file part typed by mimetypes.guess_type(filename) or
 *            application/octet-stream, `"` in the filename escaped as %22, UTF-8 kept raw,
 *            Content-Length set (BytesIO has a known size), no chunked encoding.
 *   content: client.files.content(id)  GET  /files/{id}/content  Accept: application/binary
 *   delete:  client.files.delete(id)   DELETE /files/{id}
 *
 * The provider keeps the returned `id` as LlamaStack's own file id and decides "gone" by
 * `"not found" in str(exc).lower()`, where str(exc) is "Error code: 404 - {parsed JSON body}": a
 * 404 without those words turns into a 500 in LlamaStack. The SDK retries 408/409/429/5xx, so no
 * permanent failure may use them.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { multipartBody, request, type RawResponse } from '../helpers/http.js';

/** The headers openai-python 1.x/2.x sends on every call (values as on Linux, CPython 3.12). */
function pythonSdkHeaders(apiKey: string): Record<string, string> {
  return {
    accept: 'application/json',
    'accept-encoding': 'gzip, deflate',
    'user-agent': 'OpenAI/Python 2.8.1',
    authorization: `Bearer ${apiKey}`,
    'x-stainless-lang': 'python',
    'x-stainless-package-version': '2.8.1',
    'x-stainless-os': 'Linux',
    'x-stainless-arch': 'x64',
    'x-stainless-runtime': 'CPython',
    'x-stainless-runtime-version': '3.12.11',
    'x-stainless-async': 'false',
    'x-stainless-retry-count': '0',
    'x-stainless-read-timeout': '600',
  };
}

/** httpx's FileField: Content-Type from the file name, like Python's mimetypes.guess_type. */
function guessType(filename: string): string {
  const ext = filename.toLowerCase().split('.').pop();
  const known: Record<string, string> = {
    txt: 'text/plain',
    pdf: 'application/pdf',
    json: 'application/json',
    md: 'text/markdown',
    csv: 'text/csv',
  };
  return (ext && known[ext]) || 'application/octet-stream';
}

/** httpx's HTML5 form-parameter escaping of the filename: only " \r \n change; UTF-8 stays raw. */
const html5Escape = (name: string) => name.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

const API_KEY = 'llamastack-files-key';

/** What LlamaStack's OpenAIFilesImpl.openai_upload_file sends. */
async function uploadLikeLlamaStack(
  base: string,
  content: Buffer,
  filename: string,
  purpose: 'assistants' | 'batch',
): Promise<RawResponse> {
  const boundary = randomBytes(16).toString('hex');
  const { body, contentType } = multipartBody(
    [
      { name: 'purpose', value: purpose },
      {
        name: 'file',
        data: content,
        contentType: guessType(filename),
        rawDisposition: `form-data; name="file"; filename="${html5Escape(filename)}"`,
      },
    ],
    boundary,
  );
  expect(contentType).toBe(`multipart/form-data; boundary=${boundary}`);
  return request(`${base}/files`, {
    method: 'POST',
    headers: { ...pythonSdkHeaders(API_KEY), 'content-type': contentType, 'content-length': String(body.length) },
    body,
  });
}

const contentLikeLlamaStack = (base: string, id: string) =>
  request(`${base}/files/${id}/content`, { headers: { ...pythonSdkHeaders(API_KEY), accept: 'application/binary' } });

const deleteLikeLlamaStack = (base: string, id: string) =>
  request(`${base}/files/${id}`, { method: 'DELETE', headers: pythonSdkHeaders(API_KEY) });

/** str(openai.NotFoundError) as the provider sees it, lowercased: "error code: 404 - {...}". */
function pythonErrorText(res: RawResponse): string {
  return `Error code: ${res.status} - ${JSON.stringify(res.json())}`.toLowerCase();
}

const SDK_RETRIES = [408, 409, 429, 500, 502, 503, 504];

describe('LlamaStack remote::openai files provider against the gateway (OPENAI_BASE_URL=<gateway>/v1)', () => {
  let gw: Gateway;
  let base: string;
  beforeAll(async () => {
    gw = await startGateway();
    base = `${gw.url}/v1`;
  });
  afterAll(async () => gw?.close());

  it('upload -> content -> delete round trip, as the provider does it', async () => {
    const content = Buffer.concat([Buffer.from('LlamaStack document\n'), randomBytes(64 * 1024)]);
    const up = await uploadLikeLlamaStack(base, content, 'report.pdf', 'assistants');
    expect(up.status).toBe(200);
    expect(up.headers['content-type']).toMatch(/^application\/json/);
    const file = up.json();
    // LlamaStack stores response.id as its own file id; the SDK validates the FileObject shape.
    expect(file).toMatchObject({
      object: 'file',
      filename: 'report.pdf',
      purpose: 'assistants',
      bytes: content.length,
    });
    expect(file.id).toMatch(/^file-[0-9a-f]{32}$/);
    expect(typeof file.created_at).toBe('number');

    const got = await contentLikeLlamaStack(base, file.id);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/octet-stream');
    expect(got.body.equals(content)).toBe(true);

    const del = await deleteLikeLlamaStack(base, file.id);
    expect(del.status).toBe(200);
    expect(del.json()).toEqual({ id: file.id, object: 'file', deleted: true });

    // Gone: the provider maps this to "row deleted, 404" only when the text says "not found".
    const after = await contentLikeLlamaStack(base, file.id);
    expect(after.status).toBe(404);
    expect(pythonErrorText(after)).toContain('not found');
  });

  it('keeps the file name exactly, through httpx escaping (quotes, UTF-8, spaces)', async () => {
    const filename = 'Q3 "draft" résumé – 東京.txt';
    const up = await uploadLikeLlamaStack(base, Buffer.from('x'), filename, 'assistants');
    expect(up.status).toBe(200);
    expect(up.json().filename).toBe(filename);
    const got = await contentLikeLlamaStack(base, up.json().id);
    expect(got.headers['content-disposition']).toContain(
      `filename*=UTF-8''${encodeURIComponent(filename).replace(/'/g, '%27')}`,
    );
  });

  it('accepts what LlamaStack batches upload (purpose=batch, .jsonl as application/octet-stream)', async () => {
    const jsonl = Buffer.from('{"id":"batch_req_1","custom_id":"a","response":{"status_code":200}}\n');
    const up = await uploadLikeLlamaStack(base, jsonl, 'batch_abc123_success.jsonl', 'batch');
    expect(up.status).toBe(200);
    expect(up.json()).toMatchObject({ purpose: 'batch', filename: 'batch_abc123_success.jsonl', bytes: jsonl.length });
    expect((await contentLikeLlamaStack(base, up.json().id)).body.equals(jsonl)).toBe(true);
  });

  it('an empty file uploads (LlamaStack forwards whatever it received)', async () => {
    const up = await uploadLikeLlamaStack(base, Buffer.alloc(0), 'empty.txt', 'assistants');
    expect(up.status).toBe(200);
    expect(up.json().bytes).toBe(0);
    expect((await contentLikeLlamaStack(base, up.json().id)).body.length).toBe(0);
  });

  it('an unknown id answers 404 with "not found" for content and delete, never a retried status', async () => {
    const unknown = `file-${randomBytes(16).toString('hex')}`;
    for (const res of [await contentLikeLlamaStack(base, unknown), await deleteLikeLlamaStack(base, unknown)]) {
      expect(res.status).toBe(404);
      expect(SDK_RETRIES).not.toContain(res.status);
      expect(res.json().error.message.toLowerCase()).toContain('not found');
      expect(pythonErrorText(res)).toContain('not found');
    }
  });

  it('a second delete (LlamaStack retrying after a lost answer) is a 404 "not found", which it treats as done', async () => {
    const up = await uploadLikeLlamaStack(base, Buffer.from('twice'), 'twice.txt', 'assistants');
    expect((await deleteLikeLlamaStack(base, up.json().id)).status).toBe(200);
    const again = await deleteLikeLlamaStack(base, up.json().id);
    expect(again.status).toBe(404);
    expect(pythonErrorText(again)).toContain('not found');
  });

  it('a purpose LlamaStack never sends is a 400 (not retried), so a misconfiguration fails fast', async () => {
    const boundary = randomBytes(16).toString('hex');
    const { body, contentType } = multipartBody(
      [
        { name: 'purpose', value: 'answers' },
        { name: 'file', filename: 'x.txt', data: Buffer.from('x'), contentType: 'text/plain' },
      ],
      boundary,
    );
    const res = await request(`${base}/files`, {
      method: 'POST',
      headers: { ...pythonSdkHeaders(API_KEY), 'content-type': contentType },
      body,
    });
    expect(res.status).toBe(400);
    expect(SDK_RETRIES).not.toContain(res.status);
  });
});
