import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Readable } from 'node:stream';

/**
 * Upload `stream` as the file part of a chunked multipart POST without ever holding it in memory,
 * the way openai-node streams an fs.ReadStream. Resolves with the status and parsed JSON answer.
 */
export function streamingUpload(
  url: string,
  stream: Readable,
  filename: string,
  purpose = 'assistants',
): Promise<{ status: number; json: any }> {
  const boundary = `stream-${Date.now().toString(36)}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    stream.pipe(req, { end: false });
    stream.on('end', () =>
      req.end(
        `\r\n--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n--${boundary}--\r\n`,
      ),
    );
    stream.on('error', (err) => req.destroy(err));
  });
}

/** GET `url` and hash the body as it streams in; rejects if the body ends early. */
export function streamingDownload(url: string): Promise<{ status: number; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          hash.update(c);
        });
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode!, bytes, sha256: hash.digest('hex') }));
      })
      .on('error', reject);
  });
}
