/**
 * `npm run bench:uploads`: one file through /v1/uploads (64 MiB parts, BENCH_UPLOADS_PARALLEL in
 * flight, then complete) against the same bytes sent straight to the same bucket as an S3
 * multipart upload of the same parts (CreateMultipartUpload, UploadPart with as many in flight,
 * CompleteMultipartUpload; no lib-storage), side by side in one run, with where the time goes
 * (the parts, then the complete) on both sides and the gateway's peak RSS growth over its idle
 * RSS while it takes the parts and assembles them. Prints a table of the targets and writes
 * bench/results/uploads-<timestamp>.json. Never part of `npm test` (docs/uploads.md#how-fast).
 *
 * Environment (all optional):
 *   BENCH_RUNS=3              runs per side
 *   BENCH_SIZE_MIB=4096       file size (a multiple of 64)
 *   BENCH_UPLOADS_PARALLEL=8  parts in flight on each side
 *   FILES_S3_MAX_PARTS_IN_FLIGHT  passed to the gateway (its default when unset)
 *   BENCH_TMP                 where data goes (default: the OS temp dir)
 *   BENCH_S3_ENDPOINT, BENCH_S3_REGION, BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY
 *                             an existing S3 server on loopback instead of a private Ceph RGW
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { judge, type Figure } from './figures/figure.js';
import { machine, saveResults, table } from './figures/report.js';
import { patternStream } from './lib/bytes.js';
import { env } from './lib/env.js';
import { idleRss, sampleRss, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.js';
import { deleteFile } from './lib/http.js';
import { openS3Target, type S3Target } from './lib/s3.js';
import { MiB, interleaved, timed } from './lib/stats.js';
import { runTempDir } from './lib/tmp.js';

const PART = 64 * MiB;
const RUNS = env.int('BENCH_RUNS', 3);
const SIZE = env.mib('BENCH_SIZE_MIB', 4096, { multipleOf: PART / MiB });
/** Checked by the gateway's own parser when it starts. */
const MAX_PARTS_IN_FLIGHT = env.text('FILES_S3_MAX_PARTS_IN_FLIGHT');
const PARALLEL = env.int('BENCH_UPLOADS_PARALLEL', 8);
/** The targets: end to end at least this share of the direct upload's MiB/s; RSS growth at most this many MiB. */
const MIN_RATIO = 0.8;
const MAX_RSS_GROWTH_MIB = 128;

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

/** Seconds of an upload's two phases, and of the whole from its create on. */
interface Phases {
  parts: number;
  complete: number;
  total: number;
}

/**
 * An upload of `size`: `create`, then every 64 MiB part by `sendPart` (its part number, from 1,
 * and the bytes), PARALLEL in flight, then `complete` with what each part answered.
 */
async function multipart<T>(
  size: number,
  create: () => Promise<void>,
  sendPart: (n: number, body: Readable) => Promise<T>,
  complete: (parts: T[]) => Promise<void>,
): Promise<Phases> {
  const results = new Array<T>(size / PART);
  let parts = 0;
  let completed = 0;
  const total = await timed(async () => {
    await create();
    let next = 0;
    parts = await timed(() =>
      Promise.all(
        Array.from({ length: PARALLEL }, async () => {
          while (next < results.length) {
            const i = next++;
            results[i] = await sendPart(i + 1, await patternStream(PART));
          }
        }),
      ),
    );
    completed = await timed(() => complete(results));
  });
  return { parts, complete: completed, total };
}

/** Through /v1/uploads; resolves with the phases and the new file's id. */
async function viaUploads(gw: GatewayProcess, size: number): Promise<Phases & { fileId: string }> {
  const base = `${gw.url}/v1/uploads`;
  let id = '';
  let fileId = '';
  const phases = await multipart(
    size,
    async () => {
      const upload = await postJson(base, {
        bytes: size,
        filename: 'bench.bin',
        mime_type: 'application/octet-stream',
        purpose: 'assistants',
      });
      id = upload.id;
    },
    (_n, body) => postPart(`${base}/${id}/parts`, body),
    async (partIds) => {
      fileId = (await postJson(`${base}/${id}/complete`, { part_ids: partIds })).file.id;
    },
  );
  return { ...phases, fileId };
}

/** Straight to the bucket: CreateMultipartUpload, UploadPart, CompleteMultipartUpload. */
function direct(s3: S3Target, bucket: string, key: string, size: number): Promise<Phases> {
  const object = { Bucket: bucket, Key: key };
  let uploadId: string | undefined;
  return multipart(
    size,
    async () => {
      uploadId = (await s3.client.send(new CreateMultipartUploadCommand(object))).UploadId;
    },
    async (n, body) => {
      const part = { ...object, UploadId: uploadId, PartNumber: n, Body: body, ContentLength: PART };
      return { PartNumber: n, ETag: (await s3.client.send(new UploadPartCommand(part))).ETag };
    },
    async (parts) => {
      await s3.client.send(
        new CompleteMultipartUploadCommand({ ...object, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
      );
    },
  );
}

const started = Date.now();
const tmp = await runTempDir('files-gateway-bench-uploads-');
let s3: S3Target | undefined;
let gw: GatewayProcess | undefined;
try {
  // parts, the assembled file and the direct object at once, with room to spare
  s3 = await openS3Target(tmp, Math.ceil((4 * SIZE) / 1024 / MiB) + 2);
  const bucket = `bench-uploads-${Date.now().toString(36)}`;
  await s3.createBucket(bucket);
  await fs.mkdir(path.join(tmp, 'gateway'));
  gw = await startGatewayProcess({
    env: {
      FILES_DATA_DIR: path.join(tmp, 'gateway'),
      ...s3.gatewayEnv(bucket),
      ...(MAX_PARTS_IN_FLIGHT !== undefined && { FILES_S3_MAX_PARTS_IN_FLIGHT: MAX_PARTS_IN_FLIGHT }),
    },
    logFile: path.join(tmp, 'gateway.log'),
  });
  log(
    `${RUNS} x ${SIZE / MiB} MiB, ${PART / MiB} MiB parts, ${PARALLEL} in flight, ${s3.kind} at ${s3.endpoint}, FILES_S3_MAX_PARTS_IN_FLIGHT ${MAX_PARTS_IN_FLIGHT ?? 'unset'}`,
  );
  const target = gw;
  const store = s3;
  const removeObject = async (key: string) => {
    await store.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    await store.collectGarbage();
  };
  // warm-up, one part each way: JIT, keep-alive sockets and RGW's first multipart upload
  await deleteFile(target.url, (await viaUploads(target, PART)).fileId);
  await direct(store, bucket, 'warm-up', PART);
  await removeObject('warm-up');

  const growth: number[] = [];
  let n = 0;
  const [gateway, straight] = await interleaved(RUNS, [
    async () => {
      const idle = await idleRss(target.pid);
      const rss = sampleRss(target.pid);
      const result = await viaUploads(target, SIZE);
      const { peak, hwm } = rss.stop();
      growth.push((Math.max(peak, hwm ?? 0) - idle) / MiB);
      log(
        `gateway: ${result.total.toFixed(1)} s (parts ${result.parts.toFixed(1)} s, complete ${result.complete.toFixed(1)} s), ` +
          `idle RSS ${(idle / MiB).toFixed(0)} MiB, peak ${(Math.max(peak, hwm ?? 0) / MiB).toFixed(0)} MiB`,
      );
      await deleteFile(target.url, result.fileId);
      await store.collectGarbage();
      return result;
    },
    async () => {
      const key = `direct-${n++}`;
      const result = await direct(store, bucket, key, SIZE);
      log(
        `direct: ${result.total.toFixed(1)} s (parts ${result.parts.toFixed(1)} s, complete ${result.complete.toFixed(1)} s)`,
      );
      await removeObject(key);
      return result;
    },
  ]);
  const name = `/v1/uploads ${SIZE / MiB} MiB, ${PARALLEL} x 64 MiB parts in flight`;
  const baseline = (f: (p: Phases) => number) => ({ name: 'direct multipart upload', runs: straight!.map(f) });
  const phase = (what: keyof Phases) =>
    judge(
      `${name}: ${what === 'parts' ? 'parts phase' : 'complete phase'}`,
      's',
      gateway!.map((p) => p[what]),
      {},
      baseline((p) => p[what]),
    );
  const throughput = (p: Phases) => SIZE / MiB / p.total;
  const figures: Figure[] = [
    judge(name, 'MiB/s', gateway!.map(throughput), MIN_RATIO, baseline(throughput)),
    phase('parts'),
    phase('complete'),
    judge(`${name}: peak RSS growth over idle`, 'MiB', growth, { max: MAX_RSS_GROWTH_MIB, everyRun: true }),
  ];
  await s3.removeBucket(bucket);
  const out = saveResults(`uploads-${new Date(started).toISOString().replace(/[:.]/g, '-')}`, {
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine: machine(),
    settings: {
      runs: RUNS,
      sizeMiB: SIZE / MiB,
      partMiB: PART / MiB,
      parallel: PARALLEL,
      s3: s3.kind,
      maxPartsInFlight: MAX_PARTS_IN_FLIGHT ?? null,
    },
    figures,
  });
  process.stdout.write(`\n${table(figures)}\n\nresults: ${out}\n`);
} finally {
  await gw?.stop().catch(() => undefined);
  await s3?.stop().catch((err: unknown) => log(`stopping RGW: ${String(err)}`));
  await fs.rm(tmp, { recursive: true, force: true });
}
