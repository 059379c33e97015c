/**
 * The three sides of `npm run bench:peer` (bench/peer.ts) behind one interface: a Files API server
 * (the gateway, OGX's remote::s3) driven by curl and autocannon, and S3 itself through presigned
 * URLs driven by the same clients, so that every side is measured by the same programs.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { processUsage } from './cpu.js';
import { deleteFile, curlDownload } from './http.js';
import type { RequestShape } from './request-load.js';
import type { S3Target } from './s3.js';
import { mibps } from './stats.js';

export interface PeerSide {
  name: 'gateway' | 'ogx' | 'direct';
  label: string;
  /** The server process whose CPU and memory are measured; none for direct S3 (RGW is every side's store). */
  pid?: number;
  /** Sends the file at `file` (`size` bytes) with curl; resolves with MiB/s by curl's clock and what names it now. */
  upload(file: string, size: number): Promise<{ mibps: number; ref: string }>;
  /** Reads it back with curl into /dev/null; MiB/s. */
  download(ref: string, size: number): Promise<number>;
  remove(ref: string): Promise<void>;
  /** The URL and request of one small upload, for autocannon. */
  smallUpload: { url: string } & RequestShape;
  /** Stores `file` and returns the URL that reads its content. */
  contentUrl(file: string, size: number): Promise<string>;
}

/** curl sending a request body; resolves with its status, body and seconds by its own clock. */
function curlSend(url: string, args: string[]): Promise<{ status: number; body: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    // no Expect: 100-continue: the same single round trip to every server
    execFile('curl', ['-sS', '-H', 'Expect:', '-w', '\n%{http_code} %{time_total}', ...args, url], (err, stdout) => {
      if (err) return reject(new Error(`curl ${url}: ${err.message}`));
      const at = stdout.lastIndexOf('\n');
      const [status, seconds] = stdout
        .slice(at + 1)
        .split(' ')
        .map(Number);
      resolve({ status: status!, body: stdout.slice(0, at), seconds: seconds! });
    });
  });
}

/** POST /v1/files of `file` as curl -F sends it (multipart, the bytes from disk); the new file's id and MiB/s. */
async function postFile(url: string, file: string, size: number): Promise<{ mibps: number; ref: string }> {
  const res = await curlSend(`${url}/v1/files`, [
    '-F',
    `file=@${file};filename=${path.basename(file)}`,
    '-F',
    'purpose=assistants',
  ]);
  const json = res.status === 200 ? (JSON.parse(res.body) as { id: string; bytes: number }) : undefined;
  if (!json || json.bytes !== size) throw new Error(`POST ${url}/v1/files: ${res.status} ${res.body.slice(0, 500)}`);
  return { mibps: mibps(size, res.seconds), ref: json.id };
}

/** A server of the OpenAI Files API: uploads by curl -F, content by curl, small uploads as a fixed multipart body. */
export function filesApiSide(
  name: 'gateway' | 'ogx',
  label: string,
  server: { url: string; pid: number },
  smallMultipart: { file: string; boundary: string },
): PeerSide {
  const { url } = server;
  return {
    name,
    label,
    pid: server.pid,
    upload: (file, size) => postFile(url, file, size),
    download: (id, size) => curlDownload(`${url}/v1/files/${id}/content`, size),
    remove: (id) => deleteFile(url, id),
    smallUpload: {
      url: `${url}/v1/files`,
      method: 'POST',
      headers: { 'content-type': `multipart/form-data; boundary=${smallMultipart.boundary}` },
      bodyFile: smallMultipart.file,
    },
    async contentUrl(file, size) {
      return `${url}/v1/files/${(await postFile(url, file, size)).ref}/content`;
    },
  };
}

/**
 * S3 itself: PutObject and GetObject through presigned URLs (query-string SigV4, UNSIGNED-PAYLOAD),
 * so that curl and autocannon drive it as they drive the servers. Small uploads all overwrite one
 * key: autocannon sends one URL.
 */
export async function directSide(s3: S3Target, bucket: string, smallFile: string): Promise<PeerSide> {
  const presign = (command: PutObjectCommand | GetObjectCommand) =>
    getSignedUrl(s3.client, command, { expiresIn: 24 * 3600 });
  let n = 0;
  const side: PeerSide = {
    name: 'direct',
    label: 'direct S3',
    async upload(file, size) {
      const key = `direct-${n++}`;
      const res = await curlSend(await presign(new PutObjectCommand({ Bucket: bucket, Key: key })), ['-T', file]);
      if (res.status !== 200) throw new Error(`PutObject ${key}: ${res.status} ${res.body.slice(0, 500)}`);
      return { mibps: mibps(size, res.seconds), ref: key };
    },
    download: async (key, size) =>
      curlDownload(await presign(new GetObjectCommand({ Bucket: bucket, Key: key })), size),
    async remove(key) {
      await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    smallUpload: {
      url: await presign(new PutObjectCommand({ Bucket: bucket, Key: 'direct-small' })),
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      bodyFile: smallFile,
    },
    async contentUrl(file, size) {
      const { ref } = await side.upload(file, size);
      return presign(new GetObjectCommand({ Bucket: bucket, Key: ref }));
    },
  };
  return side;
}

/** radosgw's pid when the bench started its own RGW under `tmp` (bench/lib/s3.ts), else undefined. */
export function rgwPid(tmp: string): number | undefined {
  const run = path.join(tmp, 'rgw', 'run');
  let names: string[];
  try {
    names = readdirSync(run).filter((f) => f.endsWith('.pid'));
  } catch {
    return undefined;
  }
  for (const f of names) {
    const pid = Number(readFileSync(path.join(run, f), 'utf8').trim());
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'radosgw') return pid;
    } catch {
      // gone
    }
  }
  return undefined;
}

/** CPU seconds of `pid` so far; 0 without a pid, so that a side without a server process costs nothing. */
export const cpuOf = (pid: number | undefined): number => (pid === undefined ? 0 : processUsage(pid).cpuSeconds);
