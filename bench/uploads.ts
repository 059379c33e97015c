/**
 * `npm run bench:uploads`: one file through /v1/uploads (64 MiB parts, 4 in flight, then complete)
 * against the same bytes sent straight to the same bucket with a lib-storage multipart upload
 * (64 MiB parts, queue 4), side by side in one run, and the gateway's peak RSS while it takes the
 * parts and assembles them. Never part of `npm test` (docs/uploads.md#how-fast).
 *
 * Environment (all optional):
 *   BENCH_RUNS=3            runs per side
 *   BENCH_SIZE_MIB=1024     file size (a multiple of 64)
 *   BENCH_TMP               where data goes (default: the OS temp dir)
 *   BENCH_S3_ENDPOINT, BENCH_S3_REGION, BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY
 *                           an existing S3 server on loopback instead of a private Ceph RGW
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { patternStream } from './lib/bytes.js';
import { env } from './lib/env.js';
import { sampleRss, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.js';
import { deleteFile } from './lib/http.js';
import { openS3Target, type S3Target } from './lib/s3.js';
import { MiB, mibps, ratioOfMedians, sideBySide, summarize, timed } from './lib/stats.js';

const PART = 64 * MiB;
const PARALLEL = 4;
const RUNS = env.int('BENCH_RUNS', 3);
const SIZE = env.mib('BENCH_SIZE_MIB', 1024, { multipleOf: PART / MiB });
const TMP_ROOT = env.text('BENCH_TMP') ?? os.tmpdir();

const log = (msg: string) => process.stderr.write(`[bench:uploads ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function postJson(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** One part as openai-node streams it: multipart field `data`, chunked, never in memory whole. */
function postPart(url: string, data: Readable): Promise<string> {
  const boundary = `bench-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve((JSON.parse(text) as { id: string }).id)
            : reject(new Error(`${res.statusCode} ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.write(
      `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="chunk"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    );
    data.pipe(req, { end: false });
    data.on('end', () => req.end(`\r\n--${boundary}--\r\n`));
  });
}

/** create, PARALLEL parts in flight, complete; resolves to the file id and the two phases' seconds. */
async function viaUploads(gw: GatewayProcess): Promise<{ fileId: string; parts: number; complete: number }> {
  const base = `${gw.url}/v1/uploads`;
  const upload = await postJson(base, {
    bytes: SIZE,
    filename: 'bench.bin',
    mime_type: 'application/octet-stream',
    purpose: 'assistants',
  });
  const ids = new Array<string>(SIZE / PART);
  let next = 0;
  const parts = await timed(() =>
    Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next < ids.length) {
          const i = next++;
          ids[i] = await postPart(`${base}/${upload.id}/parts`, await patternStream(PART));
        }
      }),
    ),
  );
  let fileId = '';
  const complete = await timed(
    async () => (fileId = (await postJson(`${base}/${upload.id}/complete`, { part_ids: ids })).file.id),
  );
  return { fileId, parts, complete };
}

async function direct(s3: S3Target, bucket: string, key: string): Promise<void> {
  await new Upload({
    client: s3.client,
    params: { Bucket: bucket, Key: key, Body: await patternStream(SIZE) },
    partSize: PART,
    queueSize: PARALLEL,
  }).done();
}

const tmp = await fs.mkdtemp(path.join(TMP_ROOT, 'files-gateway-bench-uploads-'));
let s3: S3Target | undefined;
let gw: GatewayProcess | undefined;
try {
  // parts, the assembled file and the direct object at once, with room to spare
  s3 = await openS3Target(tmp, Math.ceil((4 * SIZE) / 1024 / MiB) + 2);
  const bucket = `bench-uploads-${Date.now().toString(36)}`;
  await s3.createBucket(bucket);
  await fs.mkdir(path.join(tmp, 'gateway'));
  gw = await startGatewayProcess({
    env: { FILES_DATA_DIR: path.join(tmp, 'gateway'), ...s3.gatewayEnv(bucket) },
    logFile: path.join(tmp, 'gateway.log'),
  });
  log(`${RUNS} x ${SIZE / MiB} MiB, ${PART / MiB} MiB parts, ${PARALLEL} in flight, ${s3.kind} at ${s3.endpoint}`);

  const peaks: number[] = [];
  const phases: { parts: number; complete: number }[] = [];
  let n = 0;
  const target = gw;
  const runs = await sideBySide(
    RUNS,
    async () => {
      const rss = sampleRss(target.pid);
      let result!: Awaited<ReturnType<typeof viaUploads>>;
      const seconds = await timed(async () => (result = await viaUploads(target)));
      const { peak, hwm } = rss.stop();
      peaks.push(hwm ?? peak);
      phases.push({ parts: result.parts, complete: result.complete });
      log(
        `gateway: ${seconds.toFixed(1)} s (parts ${result.parts.toFixed(1)} s, complete ${result.complete.toFixed(1)} s), peak RSS ${((hwm ?? peak) / MiB).toFixed(0)} MiB`,
      );
      await deleteFile(target.url, result.fileId);
      await s3!.collectGarbage();
      return mibps(SIZE, seconds);
    },
    async () => {
      const key = `direct-${n++}`;
      const seconds = await timed(() => direct(s3!, bucket, key));
      log(`direct: ${seconds.toFixed(1)} s`);
      await s3!.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      await s3!.collectGarbage();
      return mibps(SIZE, seconds);
    },
  );
  const g = summarize(runs.a);
  const d = summarize(runs.b);
  const report = {
    size_mib: SIZE / MiB,
    runs: RUNS,
    uploads_mibps: g,
    direct_mibps: d,
    ratio: ratioOfMedians(g, d),
    gateway_peak_rss_mib: summarize(peaks.map((p) => p / MiB)),
    phases_seconds: phases,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  log(
    `/v1/uploads ${g.median.toFixed(1)} MiB/s, direct lib-storage ${d.median.toFixed(1)} MiB/s, ratio ${report.ratio.toFixed(2)}, gateway peak RSS ${report.gateway_peak_rss_mib.max.toFixed(0)} MiB`,
  );
  await s3.removeBucket(bucket);
} finally {
  await gw?.stop().catch(() => undefined);
  await s3?.stop().catch((err: unknown) => log(`stopping RGW: ${String(err)}`));
  await fs.rm(tmp, { recursive: true, force: true });
}
