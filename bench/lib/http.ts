import { execFile } from 'node:child_process';
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { streamingUpload } from '../../test/helpers/stream-upload.js';
import { discard, patternStream } from './bytes.js';
import { mibps } from './stats.js';

/** POST /v1/files as a chunked multipart stream of `size` pattern bytes; resolves with the file id. */
export async function uploadFile(url: string, size: number, filename = 'bench.bin'): Promise<string> {
  const res = await streamingUpload(`${url}/v1/files`, await patternStream(size), filename);
  if (res.status !== 200 || res.json.bytes !== size)
    throw new Error(`upload answered ${res.status}: ${JSON.stringify(res.json)}`);
  return res.json.id as string;
}

/** GET `url` and drop the body; rejects unless it is a 200 of exactly `size` bytes. */
export function downloadDiscard(url: string, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const sink = discard();
        pipeline(res, sink).then(() => {
          if (res.statusCode !== 200 || sink.bytes !== size)
            reject(new Error(`GET ${url}: ${res.statusCode}, ${sink.bytes} of ${size} bytes`));
          else resolve();
        }, reject);
      })
      .on('error', reject);
  });
}

/**
 * GET `url` with curl in a process of its own, the body to /dev/null; resolves with MiB/s by curl's
 * own clock. The client for loopback download figures: node:http reads at most 64 KiB per system
 * call and tops out well below what curl takes from the same server, so a node:http client would
 * measure itself. Rejects unless it is a 200 of exactly `size` bytes.
 */
export function curlDownload(url: string, size: number, curlArgs: string[] = []): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', ...curlArgs, url],
      (err, stdout) => {
        if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT')
          return reject(new Error('the download figures need curl (apt-get install curl)'));
        if (err) return reject(err);
        const [status, bytes, seconds] = stdout.trim().split(' ').map(Number);
        if (status !== 200 || bytes !== size)
          return reject(new Error(`GET ${url}: ${status}, ${bytes} of ${size} bytes`));
        resolve(mibps(size, seconds!));
      },
    );
  });
}

export async function deleteFile(url: string, id: string): Promise<void> {
  const res = await fetch(`${url}/v1/files/${id}`, { method: 'DELETE' });
  if (res.status !== 200) throw new Error(`DELETE ${id}: ${res.status} ${await res.text()}`);
}

/** `count` small files, `concurrency` at a time: enough rows for the metadata figures. */
export async function populate(url: string, count: number, concurrency = 16): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const form = new FormData();
      form.append('purpose', 'assistants');
      form.append('file', new Blob([`bench file ${i}\n`]), `bench-${i}.txt`);
      const res = await fetch(`${url}/v1/files`, { method: 'POST', body: form });
      if (res.status !== 200) throw new Error(`populate: ${res.status} ${await res.text()}`);
      ids.push(((await res.json()) as { id: string }).id);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return ids;
}
