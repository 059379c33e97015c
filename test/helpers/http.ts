import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { assertDocumentedResponse } from './openapi.js';

export type Part =
  | { name: string; value: string }
  | { name: string; filename?: string; data: Buffer; contentType?: string; rawDisposition?: string };

/** Builds a multipart/form-data body byte by byte, so tests control order, names and encodings. */
export function multipartBody(
  parts: Part[],
  boundary = `test-${randomBytes(8).toString('hex')}`,
): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\n`));
    if ('data' in p) {
      const disposition =
        p.rawDisposition ??
        `form-data; name="${p.name}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}`;
      chunks.push(
        Buffer.from(
          `Content-Disposition: ${disposition}\r\nContent-Type: ${p.contentType ?? 'application/octet-stream'}\r\n\r\n`,
        ),
      );
      chunks.push(p.data, Buffer.from('\r\n'));
    } else {
      chunks.push(Buffer.from(`Content-Disposition: form-data; name="${p.name}"\r\n\r\n${p.value}\r\n`));
    }
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json<T = any>(): T;
}

/**
 * One request over a fresh socket with node:http, reading the whole answer. Every answer is checked
 * against openapi/openapi.yaml, so the HTTP tests also prove the document tells the truth.
 */
export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; chunks?: Buffer[] } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const json = () => JSON.parse(body.toString('utf8'));
        const contentType = res.headers['content-type'];
        let parsed: unknown = body;
        if (body.length > 0 && /^application\/json/i.test(contentType ?? '')) {
          try {
            parsed = json();
          } catch {
            // Left as bytes: the schema check then reports the body as not JSON.
          }
        }
        try {
          assertDocumentedResponse({
            method: opts.method ?? 'GET',
            url,
            status: res.statusCode!,
            contentType,
            headers: res.headers,
            body: parsed,
          });
        } catch (err) {
          reject(err);
          return;
        }
        resolve({ status: res.statusCode!, headers: res.headers, body, json });
      });
    });
    // The server may answer (413, 400) and close before the whole body went out: the answer wins.
    req.on('error', reject);
    if (opts.chunks) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

/** POST a multipart upload and return the parsed answer. */
export async function upload(baseUrl: string, parts: Part[], prefix = '/v1'): Promise<RawResponse> {
  const { body, contentType } = multipartBody(parts);
  return request(`${baseUrl}${prefix}/files`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

export const filePart = (data: Buffer | string, filename = 'test.txt'): Part => ({
  name: 'file',
  filename,
  data: Buffer.isBuffer(data) ? data : Buffer.from(data),
});
