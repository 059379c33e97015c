/**
 * `npm run bench` runs this, then bench/uploads.ts: what the gateway costs on top of its store, as
 * ratios of medians measured side by side in one run (see README, Performance). Never part of
 * `npm test`.
 *
 * Environment (all optional):
 *   BENCH_RUNS=3            runs per figure
 *   BENCH_SIZE_MIB=1024     upload/download/fs file size
 *   BENCH_BIG_MIB=4096      file size of the memory figure
 *   BENCH_CONCURRENT=64     concurrent uploads of BENCH_CONCURRENT_MIB=8 each
 *   BENCH_META_FILES=10000  rows in the catalog for the metadata figures
 *   BENCH_META_SECONDS=10   load duration of each metadata measurement
 *   BENCH_ONLY=upload,download,rss,concurrent,fs,metadata   a subset of the figures
 *   BENCH_CPU_PROF=1        run every gateway with --cpu-prof; print its top functions by self time and its
 *                           own (dist/) functions by total time; keep the .cpuprofile files under bench/results/
 *   BENCH_TMP               where data goes (default: the OS temp dir)
 *   BENCH_S3_ENDPOINT, BENCH_S3_REGION, BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY
 *                           an existing S3 server on loopback instead of a private Ceph RGW
 *   FILES_S3_PART_SIZE, FILES_S3_QUEUE_SIZE   passed to the gateway; the direct side uses the same
 */
import { execFile } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { loadConfig } from '../src/config.js';
import { discard, patternStream } from './lib/bytes.js';
import { machineBusySeconds, processUsage } from './lib/cpu.js';
import { ROOT, idleRss, sampleRss, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.js';
import { curlDownload, deleteFile, downloadDiscard, populate, uploadFile } from './lib/http.js';
import { requestsPerSecond, startBareFileServer, startBareServer } from './lib/load.js';
import { summarizeProfiles, type ProfileLine } from './lib/profile.js';
import { openS3Target, type S3Target } from './lib/s3.js';
import { MiB, interleaved, mibps, ratioOfMedians, sideBySide, summarize, timed, type Summary } from './lib/stats.js';
import { streamingUpload } from '../test/helpers/stream-upload.js';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`${name}: "${raw}" is not a positive whole number`);
  return Number(raw);
}

const RUNS = envInt('BENCH_RUNS', 3);
const SIZE = envInt('BENCH_SIZE_MIB', 1024) * MiB;
const BIG = envInt('BENCH_BIG_MIB', 4096) * MiB;
const CONCURRENT = envInt('BENCH_CONCURRENT', 64);
const CONCURRENT_SIZE = envInt('BENCH_CONCURRENT_MIB', 8) * MiB;
const META_FILES = envInt('BENCH_META_FILES', 10_000);
const META_SECONDS = envInt('BENCH_META_SECONDS', 10);
const META_WARMUP_SECONDS = 2;
const PHASES = ['upload', 'download', 'rss', 'concurrent', 'fs', 'metadata'] as const;
type Phase = (typeof PHASES)[number];
const ONLY = new Set((process.env.BENCH_ONLY ?? PHASES.join(',')).split(',').map((s) => s.trim()));
for (const p of ONLY) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`BENCH_ONLY: unknown figure '${p}' (one of ${PHASES.join(', ')})`);
const wants = (p: Phase) => ONLY.has(p);
const CPU_PROF = process.env.BENCH_CPU_PROF === '1';
const execFileAsync = promisify(execFile);

// The gateway's own part size and queue depth (its config parser and defaults), for both sides.
const { partSizeBytes: PART_SIZE, queueSize: QUEUE_SIZE } = loadConfig({
  FILES_S3_BUCKET: 'bench',
  FILES_S3_PART_SIZE: process.env.FILES_S3_PART_SIZE,
  FILES_S3_QUEUE_SIZE: process.env.FILES_S3_QUEUE_SIZE,
}).s3!;

interface Figure {
  name: string;
  unit: string;
  gateway: Summary;
  baselineName?: string;
  baseline?: Summary;
  /** gateway median / baseline median: the figure the targets are judged on */
  ratio?: number;
  /**
   * gateway / baseline of each run with its neighbour (the sides alternate run by run): a second
   * estimate that a machine switching speed between runs moves far less than the ratio of medians.
   */
  pairedRatio?: Summary;
  target: string;
  met: boolean;
  detail?: Record<string, unknown>;
  /** The S3 figures: where the machine's CPU went (compareAccounted). */
  cpu?: CpuAccount;
}

interface CpuAccount {
  /** Medians, CPU seconds per GiB: the whole machine on the gateway's side, the gateway itself, the whole machine on the baseline's. */
  machineCpuPerGiB: number;
  gatewayCpuPerGiB: number;
  baselineMachineCpuPerGiB: number;
  busyCores: number;
  baselineBusyCores: number;
  /** baseline's machine CPU per GiB / the gateway side's: the throughput ratio when the cores are the limit */
  cpuBoundRatio: number;
}

const describeCpu = (f: Figure, cpu: CpuAccount) =>
  `${f.name}: CPU s/GiB of the whole machine ${cpu.machineCpuPerGiB.toFixed(2)} (the gateway ${cpu.gatewayCpuPerGiB.toFixed(2)}), ` +
  `${f.baselineName} ${cpu.baselineMachineCpuPerGiB.toFixed(2)}; busy cores ${cpu.busyCores.toFixed(2)} and ${cpu.baselineBusyCores.toFixed(2)} ` +
  `of ${os.cpus().length}; CPU-bound ratio ${cpu.cpuBoundRatio.toFixed(3)}`;

const figures: Figure[] = [];
const profiles: Record<string, { self: ProfileLine[]; gatewayTotal: ProfileLine[] }> = {};
const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

/** A figure against its baseline; without `minRatio` it is a reference with no target. */
function compare(name: string, unit: string, gateway: number[], baselineName: string, baseline: number[], minRatio?: number): Figure {
  const g = summarize(gateway);
  const b = summarize(baseline);
  const ratio = ratioOfMedians(g, b);
  const pairedRatio = summarize(gateway.map((value, i) => value / baseline[i]!));
  const target = minRatio === undefined ? 'reference' : `>= ${minRatio.toFixed(2)}`;
  const figure: Figure = { name, unit, gateway: g, baselineName, baseline: b, ratio, pairedRatio, target, met: minRatio === undefined || ratio >= minRatio };
  figures.push(figure);
  log(
    `${name}: gateway ${g.median.toFixed(1)} ${unit}, ${baselineName} ${b.median.toFixed(1)} ${unit}, ratio ${ratio.toFixed(3)} (paired ${pairedRatio.median.toFixed(3)})`,
  );
  return figure;
}

/** One transfer: its throughput, and CPU seconds per GiB of the whole machine and of the gateway. */
interface Transfer {
  mibps: number;
  machineCpu: number;
  gatewayCpu: number;
}

async function accounted(gw: GatewayProcess, bytes: number, transfer: () => Promise<number>): Promise<Transfer> {
  const machine = machineBusySeconds();
  const own = processUsage(gw.pid).cpuSeconds;
  const rate = await transfer();
  const gib = bytes / (1024 * MiB);
  return { mibps: rate, machineCpu: (machineBusySeconds() - machine) / gib, gatewayCpu: (processUsage(gw.pid).cpuSeconds - own) / gib };
}

/**
 * An S3 figure with where the machine's CPU went. When the cores are the limit (busy cores near
 * their count on both sides), throughput goes as the inverse of the CPU a GiB costs the whole
 * machine (S3 server, client and gateway alike), and the ratio of those costs is what the
 * throughput ratio comes to on this machine. The kernel counts CPU in clock ticks (10 ms) and the
 * machine's share includes starting curl, which curl's own timing leaves out: read it from
 * transfers of a GiB, not from a quick run's few MiB.
 */
function compareAccounted(name: string, gateway: Transfer[], baselineName: string, baseline: Transfer[], minRatio?: number): void {
  const figure = compare(name, 'MiB/s', gateway.map((t) => t.mibps), baselineName, baseline.map((t) => t.mibps), minRatio);
  const median = (ts: Transfer[], f: (t: Transfer) => number) => summarize(ts.map(f)).median;
  const busyCores = (ts: Transfer[]) => median(ts, (t) => (t.machineCpu * t.mibps) / 1024);
  const cpu: CpuAccount = {
    machineCpuPerGiB: median(gateway, (t) => t.machineCpu),
    gatewayCpuPerGiB: median(gateway, (t) => t.gatewayCpu),
    baselineMachineCpuPerGiB: median(baseline, (t) => t.machineCpu),
    busyCores: busyCores(gateway),
    baselineBusyCores: busyCores(baseline),
    cpuBoundRatio: median(baseline, (t) => t.machineCpu) / median(gateway, (t) => t.machineCpu),
  };
  figure.cpu = cpu;
  log(describeCpu(figure, cpu));
}

function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : os.freemem();
}

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = path.join(ROOT, 'bench', 'results');
const tmp = await fs.mkdtemp(path.join(process.env.BENCH_TMP ?? os.tmpdir(), 'files-gateway-bench-'));
const running = new Set<GatewayProcess>();
let gatewayCount = 0;

/** A gateway child on `env`, with its own data folder unless given one; profiled when BENCH_CPU_PROF=1. */
async function gateway(label: string, env: Record<string, string>, sharedDataDir?: string): Promise<GatewayProcess> {
  const n = ++gatewayCount;
  const dataDir = sharedDataDir ?? path.join(tmp, `gateway-${n}-${label}`);
  mkdirSync(dataDir, { recursive: true });
  const profDir = path.join(resultsDir, `${stamp}-prof`, `${n}-${label}`);
  const child = await startGatewayProcess({
    env: {
      FILES_DATA_DIR: dataDir,
      FILES_MAX_FILE_BYTES: String(Math.max(SIZE, BIG) + MiB),
      FILES_S3_PART_SIZE: String(PART_SIZE),
      FILES_S3_QUEUE_SIZE: String(QUEUE_SIZE),
      ...env,
    },
    logFile: path.join(tmp, `gateway-${n}-${label}.log`),
    nodeArgs: CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  });
  running.add(child);
  const stop = child.stop;
  child.stop = async () => {
    running.delete(child);
    await stop();
    if (CPU_PROF) profiles[`${n}-${label}`] = summarizeProfiles(profDir);
  };
  return child;
}

async function directUpload(s3: S3Target, bucket: string, key: string, size: number): Promise<void> {
  const upload = new Upload({
    client: s3.client,
    params: { Bucket: bucket, Key: key, Body: await patternStream(size), ContentType: 'application/octet-stream' },
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    leavePartsOnError: false,
  });
  await upload.done();
}

async function directDownload(s3: S3Target, bucket: string, key: string, size: number): Promise<void> {
  const res = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const sink = discard();
  await pipeline(res.Body as Readable, sink);
  if (sink.bytes !== size) throw new Error(`GetObject ${key}: ${sink.bytes} of ${size} bytes`);
}

const deleteObject = (s3: S3Target, bucket: string, key: string) => s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));

async function s3Figures(s3: S3Target, bucket: string): Promise<void> {
  const gw = await gateway('s3', s3.gatewayEnv(bucket));
  try {
    // warm-up: JIT, keep-alive sockets and RGW's first multipart upload, on both sides
    await deleteFile(gw.url, await uploadFile(gw.url, 16 * MiB));
    await directUpload(s3, bucket, 'warm-up', 16 * MiB);
    await deleteObject(s3, bucket, 'warm-up');

    let kept: string | undefined;
    if (wants('upload') || wants('download')) {
      log(`upload: ${RUNS} x ${SIZE / MiB} MiB, part size ${PART_SIZE / MiB} MiB, queue ${QUEUE_SIZE}`);
      let n = 0;
      const runs = await sideBySide(
        RUNS,
        async () => {
          const previous = kept;
          const transfer = await accounted(gw, SIZE, async () => {
            const { id, mibPerSecond } = await timedUpload(gw, undefined);
            kept = id;
            return mibPerSecond;
          });
          if (previous) await deleteFile(gw.url, previous);
          await s3.collectGarbage();
          return transfer;
        },
        async () => {
          const key = `direct-${n++}`;
          const transfer = await accounted(gw, SIZE, async () => mibps(SIZE, await timed(() => directUpload(s3, bucket, key, SIZE))));
          await deleteObject(s3, bucket, key);
          await s3.collectGarbage();
          return transfer;
        },
      );
      if (wants('upload')) compareAccounted(`upload ${SIZE / MiB} MiB`, runs.a, 'direct lib-storage', runs.b, 0.9);
    }
    if (wants('download') && kept) {
      const id = kept;
      log(`download: ${RUNS} x ${SIZE / MiB} MiB, the same object both ways, by curl and by node:http`);
      const { url: directUrl, curlArgs } = s3.curlGetObject(bucket, id);
      // The same client both ways: node:http in this process (the SDK's GetObject stream is the
      // target's baseline), and, as a reference, curl in a process of its own, which takes less of
      // the cores that RGW and the gateway share (it once took the object from RGW 1.7 times as
      // fast as the SDK, once about as fast).
      const [byNode, directByNode, byCurl, directByCurl] = await interleaved(RUNS, [
        () => accounted(gw, SIZE, async () => mibps(SIZE, await timed(() => downloadDiscard(`${gw.url}/v1/files/${id}/content`, SIZE)))),
        () => accounted(gw, SIZE, async () => mibps(SIZE, await timed(() => directDownload(s3, bucket, id, SIZE)))),
        () => accounted(gw, SIZE, () => curlDownload(`${gw.url}/v1/files/${id}/content`, SIZE)),
        () => accounted(gw, SIZE, () => curlDownload(directUrl, SIZE, curlArgs)),
      ]);
      compareAccounted(`download ${SIZE / MiB} MiB`, byNode!, 'direct GetObject', directByNode!, 0.95);
      compareAccounted(`download ${SIZE / MiB} MiB, both by curl`, byCurl!, 'GetObject by curl', directByCurl!);
    }
    if (kept) await deleteFile(gw.url, kept);
    await s3.collectGarbage();

    if (wants('concurrent')) {
      const total = CONCURRENT * CONCURRENT_SIZE;
      log(`concurrent: ${RUNS} x ${CONCURRENT} uploads of ${CONCURRENT_SIZE / MiB} MiB`);
      const indices = Array.from({ length: CONCURRENT }, (_, i) => i);
      const runs = await sideBySide(
        RUNS,
        async () => {
          let ids: string[] = [];
          const transfer = await accounted(gw, total, async () =>
            mibps(total, await timed(async () => (ids = await Promise.all(indices.map(() => uploadFile(gw.url, CONCURRENT_SIZE)))))),
          );
          await Promise.all(ids.map((id) => deleteFile(gw.url, id)));
          await s3.collectGarbage();
          return transfer;
        },
        async () => {
          const transfer = await accounted(gw, total, async () =>
            mibps(total, await timed(() => Promise.all(indices.map((i) => directUpload(s3, bucket, `concurrent-${i}`, CONCURRENT_SIZE))))),
          );
          await Promise.all(indices.map((i) => deleteObject(s3, bucket, `concurrent-${i}`)));
          await s3.collectGarbage();
          return transfer;
        },
      );
      compareAccounted(`${CONCURRENT} concurrent uploads of ${CONCURRENT_SIZE / MiB} MiB`, runs.a, 'direct lib-storage', runs.b, 0.9);
    }
  } finally {
    await gw.stop();
  }
}

/** Peak RSS growth over idle while a BIG file goes up and comes back down, a fresh gateway per run. */
async function rssFigure(s3: S3Target, bucket: string): Promise<void> {
  log(`rss: ${RUNS} x ${BIG / MiB} MiB up and down, VmRSS sampled every 50 ms`);
  const growth: number[] = [];
  const detail: Record<string, number>[] = [];
  for (let i = 0; i < RUNS; i++) {
    const gw = await gateway('rss', s3.gatewayEnv(bucket));
    try {
      // idle means warmed up (code loaded, sockets open), so what is left is what the size costs
      const warm = await uploadFile(gw.url, 16 * MiB);
      await downloadDiscard(`${gw.url}/v1/files/${warm}/content`, 16 * MiB);
      await deleteFile(gw.url, warm);
      const idle = await idleRss(gw.pid);
      let sampler = sampleRss(gw.pid);
      const id = await uploadFile(gw.url, BIG);
      const up = sampler.stop();
      sampler = sampleRss(gw.pid);
      await downloadDiscard(`${gw.url}/v1/files/${id}/content`, BIG);
      const down = sampler.stop();
      await deleteFile(gw.url, id);
      await s3.collectGarbage();
      const grew = (Math.max(up.peak, up.hwm ?? 0, down.peak, down.hwm ?? 0) - idle) / MiB;
      growth.push(grew);
      detail.push({
        idleMiB: idle / MiB,
        uploadPeakMiB: up.peak / MiB,
        uploadHwmMiB: (up.hwm ?? NaN) / MiB,
        downloadPeakMiB: down.peak / MiB,
        downloadHwmMiB: (down.hwm ?? NaN) / MiB,
        samples: up.samples + down.samples,
      });
      log(`rss run ${i + 1}: idle ${(idle / MiB).toFixed(0)} MiB, upload peak ${(up.peak / MiB).toFixed(0)}, download peak ${(down.peak / MiB).toFixed(0)}, growth ${grew.toFixed(0)} MiB`);
    } finally {
      await gw.stop();
    }
  }
  const g = summarize(growth);
  figures.push({ name: `peak RSS growth, ${BIG / MiB} MiB up+down`, unit: 'MiB', gateway: g, target: '<= 128', met: g.max <= 128, detail: { runs: detail } });
}

/**
 * `measure` on a server started for it alone and stopped after. The fs and metadata figures start
 * every run's processes afresh, as bench:compare does: two processes of one build can differ.
 */
async function onFresh<S extends { stop(): Promise<void> }, T>(start: () => Promise<S>, measure: (server: S) => Promise<T>): Promise<T> {
  const server = await start();
  try {
    return await measure(server);
  } finally {
    await server.stop();
  }
}

/** The second of two runs of `f`: the first pays for a fresh process's compilation. */
async function afterWarmUp<T>(f: () => Promise<T>): Promise<T> {
  await f();
  return f();
}

/** One timed SIZE upload through the gateway; the previous run's file (if any) is deleted after. */
async function timedUpload(gw: GatewayProcess, previous: string | undefined): Promise<{ id: string; mibPerSecond: number }> {
  let id = '';
  const seconds = await timed(async () => (id = await uploadFile(gw.url, SIZE)));
  if (previous) await deleteFile(gw.url, previous);
  return { id, mibPerSecond: mibps(SIZE, seconds) };
}

/**
 * The fs store against a plain file copy of the same bytes on the same disk (`cp`, the target; for
 * uploads also the copy flushed to the disk, as the store flushes an upload), and against a bare
 * node:http server moving them over the same loopback HTTP (what any HTTP service here can reach),
 * interleaved run by run; each server run is a fresh process (onFresh)
 * timed on its second transfer. Downloads are read by curl (see curlDownload), so that the figure
 * is the server's and not the client's.
 */
async function fsFigures(startGateway: () => Promise<GatewayProcess>): Promise<void> {
  const source = path.join(tmp, 'source.bin');
  const copy = path.join(tmp, 'copy.bin');
  await pipeline(await patternStream(SIZE), createWriteStream(source));
  // `sync` before each timed transfer: the run before can leave a GiB of writeback behind, and on a
  // disk mounted with `discard` the trims of the file it deleted; either would be charged to this one.
  const settled = async <T>(f: () => Promise<T>): Promise<T> => {
    await execFileAsync('sync');
    return f();
  };
  const copyRun = (flushed: boolean) => async () => {
    await fs.rm(copy, { force: true });
    return settled(async () =>
      mibps(
        SIZE,
        await timed(async () => {
          // --reflink=never: a copy-on-write clone (btrfs, XFS) would move no bytes at all.
          await execFileAsync('cp', ['--reflink=never', source, copy]);
          // The store flushes an upload to the disk before answering; cp alone leaves it in the page cache.
          if (flushed) await execFileAsync('sync', ['--data', copy]);
        }),
      ),
    );
  };
  const fileCopy = copyRun(false);
  const startBare = () => startBareFileServer(tmp);
  log(`fs: ${RUNS} x ${SIZE / MiB} MiB through the gateway, a bare node:http server and cp on the same disk`);
  try {
    let kept: string | undefined;
    const [up, upHttp, upCopy, upFlushedCopy] = await interleaved(RUNS, [
      () =>
        onFresh(startGateway, (gw) =>
          afterWarmUp(() =>
            settled(async () => {
              const { id, mibPerSecond } = await timedUpload(gw, kept);
              kept = id;
              return mibPerSecond;
            }),
          ),
        ),
      () =>
        onFresh(startBare, (bare) =>
          afterWarmUp(() =>
            settled(async () =>
              mibps(
                SIZE,
                await timed(async () => {
                  const res = await streamingUpload(bare.url, await patternStream(SIZE), 'bench.bin');
                  if (res.status !== 200 || res.json.bytes < SIZE) throw new Error(`bare upload answered ${res.status}: ${JSON.stringify(res.json)}`);
                }),
              ),
            ),
          ),
        ),
      fileCopy,
      copyRun(true),
    ]);
    compare(`fs upload ${SIZE / MiB} MiB`, 'MiB/s', up!, 'cp of the file', upCopy!, 0.8);
    compare(`fs upload ${SIZE / MiB} MiB, on the disk`, 'MiB/s', up!, 'cp of the file + fdatasync', upFlushedCopy!);
    compare(`fs upload ${SIZE / MiB} MiB, HTTP ceiling`, 'MiB/s', up!, 'bare node:http to file', upHttp!);
    const id = kept!;
    const { size: bareSize } = await fs.stat(path.join(tmp, 'bare-http.bin'));
    const [down, downHttp, downCopy] = await interleaved(RUNS, [
      () => onFresh(startGateway, (gw) => afterWarmUp(() => settled(() => curlDownload(`${gw.url}/v1/files/${id}/content`, SIZE)))),
      () => onFresh(startBare, (bare) => afterWarmUp(() => settled(() => curlDownload(bare.url, bareSize)))),
      fileCopy,
    ]);
    compare(`fs download ${SIZE / MiB} MiB`, 'MiB/s', down!, 'cp of the file', downCopy!, 0.8);
    compare(`fs download ${SIZE / MiB} MiB, HTTP ceiling`, 'MiB/s', down!, 'bare node:http from file', downHttp!);
    await onFresh(startGateway, (gw) => deleteFile(gw.url, id));
  } finally {
    for (const file of [source, copy, path.join(tmp, 'bare-http.bin')]) await fs.rm(file, { force: true });
  }
}

/** Requests per second over META_SECONDS, after a load of its own: a fresh process spends its first second compiling. */
const warmedLoad = async (url: string) => {
  await requestsPerSecond(url, META_WARMUP_SECONDS);
  return requestsPerSecond(url, META_SECONDS);
};

async function metadataFigures(startGateway: () => Promise<GatewayProcess>): Promise<void> {
  log(`metadata: populating ${META_FILES} files`);
  const listRoute = '/v1/files?limit=100';
  const { fileRoute, bodies } = await onFresh(startGateway, async (gw) => {
    const ids = await populate(gw.url, META_FILES);
    const fileRoute = `/v1/files/${ids[Math.floor(ids.length / 2)]}`;
    const body = async (route: string) => (await fetch(`${gw.url}${route}`)).json();
    return { fileRoute, bodies: { file: await body(fileRoute), list: await body(listRoute) } };
  });
  for (const [what, gatewayRoute, bareRoute] of [
    ['retrieve by id', fileRoute, '/file'],
    ['list page of 100', listRoute, '/list'],
  ] as const) {
    log(`metadata: ${what}, ${RUNS} x ${META_SECONDS} s each side (autocannon, 32 connections), fresh processes each run`);
    const runs = await sideBySide(
      RUNS,
      () => onFresh(startGateway, (gw) => warmedLoad(`${gw.url}${gatewayRoute}`)),
      () => onFresh(() => startBareServer(bodies), (bare) => warmedLoad(`${bare.url}${bareRoute}`)),
    );
    compare(`metadata: ${what} (${META_FILES} files)`, 'req/s', runs.a, 'bare fastify route', runs.b, 0.5);
  }
}

const fmt = (s: Summary | undefined, digits: number) =>
  s ? `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}` : '';

function table(): string {
  const rows = figures.map((f) => {
    const digits = f.unit === 'req/s' ? 0 : 1;
    return [
      f.name,
      f.unit,
      fmt(f.gateway, digits),
      f.baselineName ? `${fmt(f.baseline, digits)} (${f.baselineName})` : '',
      f.ratio === undefined ? '' : f.ratio.toFixed(3),
      f.pairedRatio ? fmt(f.pairedRatio, 2) : '',
      f.target,
      f.target === 'reference' ? '' : f.met ? 'met' : 'MISSED',
    ];
  });
  const header = ['figure', 'unit', 'gateway min / median / max', 'baseline min / median / max', 'ratio', 'paired min / median / max', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The S3 figures' CPU accounting, under the table. */
const cpuLines = (): string =>
  figures
    .filter((f) => f.cpu)
    .map((f) => `${describeCpu(f, f.cpu!)}\n`)
    .join('');

const started = Date.now();
let s3: S3Target | undefined;
try {
  if (wants('upload') || wants('download') || wants('rss') || wants('concurrent')) {
    // memstore keeps objects in RAM: at most two SIZE objects or one BIG one at a time, plus slack
    const needGiB = Math.ceil(Math.max(2 * SIZE, BIG, CONCURRENT * CONCURRENT_SIZE) / (1024 * MiB)) + 2;
    const free = memAvailable() / (1024 * MiB);
    if (!process.env.BENCH_S3_ENDPOINT && free < needGiB + 4) {
      throw new Error(`${free.toFixed(1)} GiB available; the RGW memstore needs ${needGiB} GiB plus room for the processes: lower BENCH_BIG_MIB / BENCH_SIZE_MIB`);
    }
    log(`S3: ${process.env.BENCH_S3_ENDPOINT ?? `starting a private Ceph RGW (memstore ${needGiB} GiB)`}`);
    s3 = await openS3Target(tmp, needGiB);
    const bucket = `bench-${Date.now().toString(36)}`;
    await s3.createBucket(bucket);
    try {
      if (wants('upload') || wants('download') || wants('concurrent')) await s3Figures(s3, bucket);
      if (wants('rss')) await rssFigure(s3, bucket);
    } finally {
      await s3.removeBucket(bucket);
    }
  }
  if (wants('fs') || wants('metadata')) {
    const dataDir = path.join(tmp, 'gateway-fs');
    const startGateway = () => gateway('fs', { FILES_STORE: 'fs' }, dataDir);
    if (wants('fs')) await fsFigures(startGateway);
    if (wants('metadata')) await metadataFigures(startGateway);
  }
} finally {
  for (const gw of running) await gw.stop().catch(() => undefined);
  await s3?.stop().catch((err: unknown) => log(`stopping RGW: ${String(err)}`));
  await fs.rm(tmp, { recursive: true, force: true });
}

const result = {
  startedAt: new Date(started).toISOString(),
  durationSeconds: Math.round((Date.now() - started) / 1000),
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 1024 ** 3), node: process.version },
  settings: {
    runs: RUNS,
    sizeMiB: SIZE / MiB,
    bigMiB: BIG / MiB,
    concurrent: CONCURRENT,
    concurrentMiB: CONCURRENT_SIZE / MiB,
    metaFiles: META_FILES,
    metaSeconds: META_SECONDS,
    partSizeMiB: PART_SIZE / MiB,
    queueSize: QUEUE_SIZE,
    s3: s3?.kind,
    loadClient: 'autocannon (separate process), 32 connections',
  },
  figures,
  ...(CPU_PROF && { profiles }),
};
mkdirSync(resultsDir, { recursive: true });
const out = path.join(resultsDir, `${stamp}.json`);
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`\n${table()}\n${cpuLines()}\n${os.cpus().length} cores (${result.machine.cpuModel}), ${result.machine.memoryGiB} GiB, Node ${process.version}; ${RUNS} runs per figure; ${result.durationSeconds} s\nresults: ${path.relative(ROOT, out)}\n`);
if (CPU_PROF) {
  const show = (lines: ProfileLine[]) => lines.map((t) => `  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms  ${t.fn}`).join('\n');
  for (const [label, p] of Object.entries(profiles)) {
    process.stdout.write(`\ngateway ${label}: top self time\n${show(p.self)}\ngateway ${label}: its own functions by total time\n${show(p.gatewayTotal)}\n`);
  }
  process.stdout.write(`\nprofiles: ${path.relative(ROOT, path.join(resultsDir, `${stamp}-prof`))} (.cpuprofile: Chrome DevTools or speedscope for flame graphs)\n`);
}
