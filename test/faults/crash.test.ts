/**
 * The built gateway SIGKILLed in the middle of 50 uploads, then `reindex --prune` and a restart:
 * every row has its bytes, every acknowledged upload is there, and no leftover survives.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../helpers/build.js';
import { deterministicStream } from '../helpers/bytes.js';
import { filesUnder, tempDir } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { serve } from '../helpers/process.js';
import { MiB, createTestBucket, type TestBucket } from '../helpers/s3.js';
import { streamingDownload } from '../helpers/stream-upload.js';

const run = promisify(execFile);
const UPLOADS = 50;

/**
 * One upload over a raw socket: the file part (file first, like openai-node, or after purpose),
 * and the form's end only after `hold` resolves, so a kill can find it at any stage.
 */
function heldUpload(
  url: string,
  size: number,
  seed: string,
  purposeFirst: boolean,
  hold: Promise<void>,
): Promise<{ status: number; id?: string }> {
  const boundary = `crash-${seed}`;
  return new Promise((resolve) => {
    const req = http.request(
      `${url}/v1/files`,
      {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            id: res.statusCode === 200 ? (JSON.parse(text) as { id: string }).id : undefined,
          }),
        );
        res.on('error', () => resolve({ status: 0 }));
      },
    );
    req.on('error', () => resolve({ status: 0 }));
    const purpose = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n`;
    if (purposeFirst) req.write(purpose);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${seed}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    const { stream } = deterministicStream(size, seed);
    stream.pipe(req, { end: false });
    stream.on('end', () => {
      // The next boundary ends the file part: the bytes are stored, the metadata may not be yet.
      req.write(`\r\n`);
      void hold.then(() => req.end(`${purposeFirst ? '' : purpose}--${boundary}--\r\n`));
    });
  });
}

const sha256Of = async (size: number, seed: string) => {
  const { stream, sha256 } = deterministicStream(size, seed);
  stream.resume();
  return sha256;
};

interface Target {
  name: string;
  env(dataDir: string): Record<string, string>;
  /** Leftovers the store itself may hold: pending multipart uploads, objects (ids). */
  leftovers(dataDir: string): Promise<{ pending: number; blobs: string[] }>;
  size(i: number): number;
}

let bucket: TestBucket | undefined;
const targets: Target[] = [
  {
    name: 'fs',
    env: (dataDir) => ({ FILES_DATA_DIR: dataDir }),
    async leftovers(dataDir) {
      const tmp = await filesUnder(path.join(dataDir, 'tmp'));
      const blobs = (await filesUnder(path.join(dataDir, 'files'))).map((f) => path.basename(f));
      const ids = blobs.filter((b) => !b.endsWith('.meta.json'));
      // every blob has its sidecar and every sidecar its blob
      expect(blobs.filter((b) => b.endsWith('.meta.json')).sort()).toEqual(ids.map((id) => `${id}.meta.json`).sort());
      return { pending: tmp.length, blobs: ids };
    },
    size: (i) => (i % 5 === 0 ? 3 * MiB : 64 * 1024 + i),
  },
  {
    name: 's3',
    env: (dataDir) => {
      const c = bucket!.config();
      return {
        FILES_DATA_DIR: dataDir,
        FILES_S3_BUCKET: c.bucket,
        FILES_S3_ENDPOINT: c.endpoint!,
        FILES_S3_REGION: c.region,
        FILES_S3_ACCESS_KEY_ID: c.credentials!.accessKeyId,
        FILES_S3_SECRET_ACCESS_KEY: c.credentials!.secretAccessKey,
        FILES_S3_FORCE_PATH_STYLE: 'true',
        FILES_S3_PART_SIZE: '5MiB',
      };
    },
    async leftovers() {
      const listed = await bucket!.client.send(new ListObjectsV2Command({ Bucket: bucket!.config().bucket }));
      return { pending: (await bucket!.pendingUploads()) ?? 0, blobs: (listed.Contents ?? []).map((o) => o.Key!) };
    },
    // every fifth is multipart (over the 5 MiB part size), so kills catch open multipart uploads
    size: (i) => (i % 5 === 0 ? 12 * MiB : 64 * 1024 + i),
  },
];

describe.each(targets)('a gateway killed during $name uploads', (target) => {
  let dataDir: string;
  beforeAll(async () => {
    await buildOnce();
    if (target.name === 's3') bucket = await createTestBucket({ label: 'crash' });
    dataDir = await tempDir('files-gateway-crash-');
  }, 120_000);
  afterAll(async () => {
    if (target.name === 's3') await bucket?.destroy();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged upload, and reindex --prune leaves no leftover', { timeout: 120_000 }, async () => {
    const env = { ...target.env(dataDir), FILES_LEFTOVER_GRACE_SECONDS: '0' };
    const gw = await serve(env);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // Half finish at once, half wait (bytes stored, form unfinished) until after the kill.
    const uploads = Array.from({ length: UPLOADS }, (_, i) => {
      const seed = `crash-${target.name}-${i}`;
      return {
        seed,
        size: target.size(i),
        answer: heldUpload(gw.url, target.size(i), seed, i % 2 === 0, i % 4 < 2 ? Promise.resolve() : held),
      };
    });
    // Kill when some have been acknowledged and the rest are in every other stage.
    let acknowledged = 0;
    for (const u of uploads) void u.answer.then((a) => a.status === 200 && acknowledged++);
    const deadline = Date.now() + 30_000;
    while (acknowledged < UPLOADS / 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    gw.child.kill('SIGKILL');
    await gw.exited;
    release();
    const answers = await Promise.all(uploads.map((u) => u.answer));
    const acked = uploads.flatMap((u, i) => (answers[i]!.status === 200 ? [{ ...u, id: answers[i]!.id! }] : []));
    expect(acked.length).toBeGreaterThan(0);
    expect(acked.length).toBeLessThan(UPLOADS);

    const { stdout } = await run(process.execPath, [path.resolve('dist/main.js'), 'reindex', '--prune'], {
      env: { PATH: process.env.PATH!, ...env },
    });
    // how many depends on where the kill found each upload; what must hold is the state below
    expect(stdout).toMatch(/\d+ leftovers removed/);
    const again = await serve(env);
    try {
      const rows = (await request(`${again.url}/v1/files?limit=10000`)).json().data as {
        id: string;
        filename: string;
        bytes: number;
      }[];
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (const a of acked) expect(byId.has(a.id), `acknowledged ${a.id} is listed`).toBe(true);
      // every row has its bytes, and they are the bytes that were sent
      for (const row of rows) {
        const u = uploads.find((x) => x.seed === row.filename)!;
        const got = await streamingDownload(`${again.url}/v1/files/${row.id}/content`);
        expect(got).toEqual({ status: 200, bytes: u.size, sha256: await sha256Of(u.size, u.seed) });
      }
      const left = await target.leftovers(dataDir);
      expect(left.pending).toBe(0);
      // every stored blob is a row: orphans were removed, blobs with metadata adopted
      expect(left.blobs.sort()).toEqual(rows.map((r) => r.id).sort());
    } finally {
      again.child.kill('SIGKILL');
    }
  });
});
