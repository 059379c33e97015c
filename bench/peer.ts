/**
 * `npm run bench:peer`: the gateway side by side with LlamaStack's own S3 files provider (OGX 0.8.0,
 * `files: remote::s3`, boto3, whole files in memory, metadata in SQLite) and with S3 itself, all
 * three on one private Ceph RGW, each in a bucket of its own, the sides alternating run after run.
 * Never part of `npm test` (docs/decisions/0023-llamastack-remote-s3-side-by-side.md).
 *
 * Every side is driven by the same clients: curl for the big files (`curl -F file=@… -F
 * purpose=assistants` to the two servers, `curl -T` to a presigned PutObject URL for direct S3;
 * downloads by curl into /dev/null, presigned GetObject for S3) and autocannon in a process of its
 * own for the small ones (a fixed multipart body to POST /v1/files, or a PUT of the bare bytes to
 * one presigned key; GETs of one file's content). For each server process it reads the CPU it
 * spent (utime + stime) and its peak RSS (VmHWM reset through clear_refs, and VmRSS sampled);
 * radosgw's CPU too when the bench started it. An OGX that stops answering after a load prints
 * its threads' stacks (SIGABRT, Python's faulthandler) into the results and a fresh one takes its
 * place; every acknowledged small upload must have its object in the bucket.
 *
 * Environment (all optional):
 *   BENCH_RUNS=3                 runs per side and figure
 *   BENCH_PEER_REQUESTS=1000     requests of each small-file load: a count, not a duration, since a
 *                                duration's end drops the requests in flight, and OGX then spends minutes
 *                                of its only event loop rendering the tracebacks (decision 0023)
 *   BENCH_PEER_CONNECTIONS=16    concurrent clients of each small-file load
 *   BENCH_PEER_WARMUP=500        requests of each small-file load every side takes first, unmeasured
 *                                (V8 still compiles the gateway's hot paths through the first few hundred)
 *   BENCH_PEER_IDLE_SECONDS=60   idle time before the last RSS reading
 *   BENCH_PEER_ONLY=big,small    a subset of the figures
 *   BENCH_TMP                    where the gateway's data and the files to send go (default: the OS temp dir)
 *   BENCH_S3_ENDPOINT, BENCH_S3_REGION, BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY
 *                                an existing S3 server on loopback instead of a private Ceph RGW
 *   OGX_E2E_ROOT                 the chroot OGX runs in (as for npm run test:llamastack)
 *
 * Without the chroot (scripts/llamastack-e2e.sh setup) or root it says why and exits 0.
 */
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { patternStream } from './lib/bytes.js';
import { machineBusySeconds } from './lib/cpu.js';
import { env } from './lib/env.js';
import {
  idleRss,
  procStatusBytes,
  ROOT,
  sampleRss,
  startGatewayProcess,
  type GatewayProcess,
} from './lib/gateway-process.js';
import { ogxUnavailable, startOgxS3, type OgxS3 } from './lib/ogx-s3.js';
import { cpuOf, directSide, filesApiSide, rgwPid, type PeerSide } from './lib/peer-sides.js';
import { requestLoad, type RequestLoad } from './lib/request-load.js';
import { openS3Target, type S3Target } from './lib/s3.js';
import { interleaved, MiB, summarize, type Summary } from './lib/stats.js';
import { runTempDir } from './lib/tmp.js';

const RUNS = env.int('BENCH_RUNS', 3);
const REQUESTS = env.int('BENCH_PEER_REQUESTS', 1000);
const CONNECTIONS = env.int('BENCH_PEER_CONNECTIONS', 16);
const WARMUP = env.int('BENCH_PEER_WARMUP', 500, { min: 0 });
const IDLE_SECONDS = env.int('BENCH_PEER_IDLE_SECONDS', 60, { min: 0 });
const ONLY = new Set(env.listOf('BENCH_PEER_ONLY', ['big', 'small'] as const, ['big', 'small']));
/** OGX's API layer refuses uploads over 100 MiB: the largest whole-MiB file both servers take, and a smaller one. */
const BIG_SIZES = [64 * MiB, 99 * MiB];
const SMALL = 64 * 1024;
const GiB = 1024 * MiB;
/** Targets of the issue: the gateway's throughput per CPU-second at least 3× the peer's. */
const CPU_TARGET = 3;

const log = (msg: string) => process.stderr.write(`[bench:peer ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface TransferRun {
  mibps: number;
  /** CPU seconds per GiB of the side's server process; undefined for direct S3 */
  serverCpuPerGiB?: number;
  /** radosgw's CPU seconds per GiB, when the bench started it */
  rgwCpuPerGiB?: number;
  /** the whole machine's busy CPU seconds per GiB, other processes' included: meaningful on an otherwise idle machine only */
  machineCpuPerGiB: number;
  /** the server's peak RSS during the transfer, and how far above its RSS just before, MiB */
  peakRssMiB?: number;
  growthMiB?: number;
}

interface LoadRun extends RequestLoad {
  serverCpuMsPerRequest?: number;
  rgwCpuMsPerRequest?: number;
}

type Sides = Record<PeerSide['name'], PeerSide>;

const skipped = ogxUnavailable();
if (skipped) {
  log(`skipped: OGX cannot run here (${skipped})`);
  process.exit(0);
}

const started = Date.now();
const loadAtStart = os.loadavg();
const tmp = await runTempDir('files-gateway-bench-peer-');
let s3: S3Target | undefined;
let gw: GatewayProcess | undefined;
let ogx: OgxS3 | undefined;
const errors: string[] = [];
/** Each time OGX stopped answering: after what, how busy it was, and the stacks its faulthandler printed. */
const hangs: { after: string; cpuPercent: number; stacks: string }[] = [];
try {
  // small uploads accumulate (some 10,000 objects of 64 KiB a run on the fastest side)
  s3 = await openS3Target(tmp, 8);
  const rgw = rgwPid(tmp);
  const stamp = Date.now().toString(36);
  const buckets = { gateway: `peer-gateway-${stamp}`, ogx: `peer-ogx-${stamp}`, direct: `peer-direct-${stamp}` };
  for (const b of Object.values(buckets)) await s3.createBucket(b);

  const files = await writeFiles(tmp);
  await fs.mkdir(path.join(tmp, 'gateway'));
  gw = await startGatewayProcess({
    env: { FILES_DATA_DIR: path.join(tmp, 'gateway'), ...s3.gatewayEnv(buckets.gateway) },
    logFile: path.join(tmp, 'gateway.log'),
  });
  ogx = await startOgxS3(s3, buckets.ogx);
  const sides: Sides = {
    gateway: filesApiSide('gateway', 'gateway', gw, files.multipart),
    ogx: filesApiSide('ogx', 'OGX remote::s3', ogx, files.multipart),
    direct: await directSide(s3, buckets.direct, files.small),
  };
  const servers = () => [sides.gateway, sides.ogx];
  log(
    `gateway pid ${gw.pid}, OGX pid ${ogx.pid}, ${s3.kind} at ${s3.endpoint}${rgw ? ` (radosgw pid ${rgw})` : ''}; ${RUNS} runs`,
  );

  const idle: Record<string, Record<string, number>> = {};
  const readIdle = async (moment: string) => {
    idle[moment] = {};
    for (const side of servers()) idle[moment][side.name] = (await idleRss(side.pid!)) / MiB;
    log(
      `idle RSS ${moment}: ${servers()
        .map((s) => `${s.label} ${idle[moment]![s.name]!.toFixed(0)} MiB`)
        .join(', ')}`,
    );
  };
  await readIdle('at start');
  for (const side of Object.values(sides)) {
    const { ref } = await side.upload(files.small, SMALL);
    await side.download(ref, SMALL);
    await side.remove(ref);
  }

  const big: Record<string, Record<string, TransferRun[]>> = {};
  if (ONLY.has('big')) {
    for (const size of BIG_SIZES) {
      const runs = await interleaved(
        RUNS,
        Object.values(sides).map((side) => () => bigRun(side, size, files.big.get(size)!, rgw, s3!)),
      );
      for (const [i, side] of Object.values(sides).entries()) {
        const ok = runs[i]!.filter((r) => r !== undefined);
        big[`upload ${size / MiB} MiB`] ??= {};
        big[`download ${size / MiB} MiB`] ??= {};
        big[`upload ${size / MiB} MiB`]![side.name] = ok.map((r) => r.up);
        big[`download ${size / MiB} MiB`]![side.name] = ok.map((r) => r.down);
      }
    }
    await readIdle('after the big files');
  }

  const small: Record<string, Record<string, LoadRun[]>> = {};
  const lost: Record<string, { acknowledged: number; objects: number }> = {};
  if (ONLY.has('small')) {
    const readUrls = new Map<string, string>();
    for (const side of Object.values(sides)) readUrls.set(side.name, await side.contentUrl(files.small, SMALL));
    // a client waits 30 s for an answer; a load stops after 32 errors and timeouts (a server that stopped answering)
    const patience = { timeoutSeconds: 30, bailout: 32 };
    const read = (side: PeerSide, limit: Parameters<typeof requestLoad>[1]) =>
      requestLoad(readUrls.get(side.name)!, limit, CONNECTIONS, patience);
    const write = (side: PeerSide, limit: Parameters<typeof requestLoad>[1]) =>
      requestLoad(side.smallUpload.url, limit, CONNECTIONS, { ...side.smallUpload, ...patience });
    // uploads acknowledged outside the measured runs: the file read back, and the warm-up's
    const unmeasured: Record<string, number> = { gateway: 1, ogx: 1, direct: 1 };
    /** After a load on OGX: one that stopped answering gives its stacks and a fresh one takes its place. */
    const recover = async (side: PeerSide, after: string) => {
      if (side.name !== 'ogx' || (await ogx!.answers())) return;
      log(`OGX stopped answering after ${after}: its stacks, then a fresh OGX`);
      const cpuPercent = await cpuPercentOver(ogx!.pid, 2000);
      const stacks = await ogx!.abortWithStacks();
      hangs.push({ after, cpuPercent, stacks: stacks.slice(-30_000) });
      errors.push(`OGX stopped answering after ${after} (at ${cpuPercent.toFixed(0)} % CPU); restarted`);
      await ogx!.stop();
      ogx = await startOgxS3(s3!, buckets.ogx);
      sides.ogx = filesApiSide('ogx', 'OGX remote::s3', ogx, files.multipart);
      readUrls.set('ogx', await sides.ogx.contentUrl(files.small, SMALL));
      unmeasured.ogx! += 1;
    };
    if (WARMUP > 0) {
      log(`small files: warm-up, ${WARMUP} reads and ${WARMUP} uploads on every side`);
      for (const name of Object.keys(sides) as PeerSide['name'][]) {
        await attempt(`${sides[name].label}, warm-up reads`, () => read(sides[name], { requests: WARMUP }));
        await recover(sides[name], 'the warm-up reads');
        const warm = await attempt(`${sides[name].label}, warm-up uploads`, () =>
          write(sides[name], { requests: WARMUP }),
        );
        unmeasured[name]! += warm?.ok ?? 0;
        await recover(sides[name], 'the warm-up uploads');
      }
      await s3.collectGarbage();
    }
    log(`small files: ${RUNS} x ${REQUESTS} requests of 64 KiB, ${CONNECTIONS} connections`);
    small['64 KiB content reads'] = await loadRuns(
      '64 KiB reads',
      sides,
      rgw,
      (side) => read(side, { requests: REQUESTS }),
      recover,
    );
    small['64 KiB uploads'] = await loadRuns(
      '64 KiB uploads',
      sides,
      rgw,
      async (side) => {
        const r = await write(side, { requests: REQUESTS });
        await s3!.collectGarbage();
        return r;
      },
      recover,
    );
    // every acknowledged upload must have its object (one the client gave up on may have landed too)
    for (const side of servers()) {
      lost[side.name] = {
        acknowledged: unmeasured[side.name]! + small['64 KiB uploads']![side.name]!.reduce((n, r) => n + r.ok, 0),
        objects: await countObjects(s3, buckets[side.name as 'gateway' | 'ogx']),
      };
    }
    await readIdle('after the small files');
  }
  if (IDLE_SECONDS > 0) {
    log(`idle for ${IDLE_SECONDS} s`);
    await sleep(IDLE_SECONDS * 1000);
    await readIdle(`after ${IDLE_SECONDS} s idle`);
  }

  const result = derive(big, small, idle, lost);
  const stampFile = new Date(started).toISOString().replaceAll(':', '-');
  const out = path.join(ROOT, 'bench', 'results', `peer-${stampFile}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify(
      {
        startedAt: new Date(started).toISOString(),
        durationSeconds: Math.round((Date.now() - started) / 1000),
        settings: {
          runs: RUNS,
          requests: REQUESTS,
          warmUp: WARMUP,
          connections: CONNECTIONS,
          idleSeconds: IDLE_SECONDS,
          s3: s3.kind,
        },
        machine: {
          cores: os.cpus().length,
          cpuModel: os.cpus()[0]?.model,
          node: process.version,
          loadAverageAtStart: loadAtStart,
          loadAverageAtEnd: os.loadavg(),
        },
        errors,
        ogxHangs: hangs,
        ogxLogProblems: logProblems(ogx.logs()),
        ...result,
        runs: { big, small },
      },
      null,
      2,
    )}\n`,
  );
  process.stdout.write(`\n${result.table}\n\nresults: ${path.relative(ROOT, out)}\n`);
  if (errors.length > 0) process.stdout.write(`errors (${errors.length}):\n${errors.join('\n')}\n`);
  const problems = logProblems(ogx.logs());
  if (problems.count > 0)
    process.stdout.write(
      `OGX logged ${problems.count} error or warning lines; the last:\n${problems.last.slice(-8).join('\n')}\n`,
    );
} finally {
  await ogx?.stop().catch((err: unknown) => log(`stopping OGX: ${String(err)}`));
  await gw?.stop().catch(() => undefined);
  await s3?.stop().catch((err: unknown) => log(`stopping RGW: ${String(err)}`));
  await fs.rm(tmp, { recursive: true, force: true });
}

/** The big files on disk, the small one, and the small upload's multipart body; ASCII where autocannon sends it. */
async function writeFiles(dir: string) {
  const bigFiles = new Map<number, string>();
  for (const size of BIG_SIZES) {
    const file = path.join(dir, `peer-${size / MiB}mib.bin`);
    await pipeline(await patternStream(size), createWriteStream(file));
    bigFiles.set(size, file);
  }
  const line = 'files-gateway bench:peer small file, 64 KiB of text\n';
  const text = line.repeat(Math.ceil(SMALL / line.length)).slice(0, SMALL);
  const smallFile = path.join(dir, 'peer-small.txt');
  await fs.writeFile(smallFile, text);
  // the file part first, as openai-node sends it
  const boundary = 'bench-peer-boundary-0123456789';
  const body =
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="small.txt"\r\n` +
    `Content-Type: text/plain\r\n\r\n${text}\r\n` +
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${boundary}--\r\n`;
  const multipartFile = path.join(dir, 'peer-small.multipart');
  await fs.writeFile(multipartFile, body);
  return { big: bigFiles, small: smallFile, multipart: { file: multipartFile, boundary } };
}

/** CPU and memory around one transfer of `bytes` on `side`. */
async function accounted(
  side: PeerSide,
  bytes: number,
  rgw: number | undefined,
  transfer: () => Promise<number>,
): Promise<TransferRun> {
  const before = side.pid === undefined ? undefined : procStatusBytes(side.pid, 'VmRSS');
  const rss = side.pid === undefined ? undefined : sampleRss(side.pid);
  const server = cpuOf(side.pid);
  const store = cpuOf(rgw);
  const machine = machineBusySeconds();
  const rate = await transfer();
  const gib = bytes / GiB;
  const run: TransferRun = {
    mibps: rate,
    machineCpuPerGiB: (machineBusySeconds() - machine) / gib,
    ...(rgw === undefined ? {} : { rgwCpuPerGiB: (cpuOf(rgw) - store) / gib }),
  };
  if (rss && before !== undefined) {
    const { peak, hwm } = rss.stop();
    const peakBytes = Math.max(peak, hwm ?? 0);
    Object.assign(run, {
      serverCpuPerGiB: (cpuOf(side.pid) - server) / gib,
      peakRssMiB: peakBytes / MiB,
      growthMiB: (peakBytes - before) / MiB,
    });
  }
  return run;
}

/** One upload and download of `size` on `side`, then the file deleted; undefined (and the error kept) when the side fails. */
async function bigRun(side: PeerSide, size: number, file: string, rgw: number | undefined, s3: S3Target) {
  return attempt(`${side.label} ${size / MiB} MiB`, async () => {
    let ref = '';
    const up = await accounted(side, size, rgw, async () => {
      const r = await side.upload(file, size);
      ref = r.ref;
      return r.mibps;
    });
    const down = await accounted(side, size, rgw, () => side.download(ref, size));
    await side.remove(ref);
    await s3.collectGarbage();
    log(
      `${side.label} ${size / MiB} MiB: up ${up.mibps.toFixed(0)} MiB/s, down ${down.mibps.toFixed(0)} MiB/s` +
        (up.peakRssMiB === undefined
          ? ''
          : `, peak RSS ${up.peakRssMiB.toFixed(0)} / ${down.peakRssMiB!.toFixed(0)} MiB`),
    );
    return { up, down };
  });
}

/** `RUNS` loads on every side, alternating, with each server's (and radosgw's) CPU per 2xx answer. */
async function loadRuns(
  figure: string,
  sides: Sides,
  rgw: number | undefined,
  load: (side: PeerSide) => Promise<RequestLoad>,
  after: (side: PeerSide, what: string) => Promise<void>,
): Promise<Record<string, LoadRun[]>> {
  const names = Object.keys(sides) as PeerSide['name'][];
  const runs = await interleaved(
    RUNS,
    names.map((name) => async (): Promise<LoadRun | undefined> => {
      // looked up each run: a side's server may have been replaced after the run before
      const side = sides[name];
      const run = await measureLoad(figure, side, rgw, load);
      await after(side, figure);
      return run;
    }),
  );
  return Object.fromEntries(names.map((name, i) => [name, runs[i]!.filter((r) => r !== undefined)]));
}

/** One load on `side`, with its server's and radosgw's CPU per 2xx answer. */
async function measureLoad(
  figure: string,
  side: PeerSide,
  rgw: number | undefined,
  load: (side: PeerSide) => Promise<RequestLoad>,
): Promise<LoadRun | undefined> {
  const server = cpuOf(side.pid);
  const store = cpuOf(rgw);
  const r = await attempt(`${side.label}, ${figure}`, () => load(side));
  if (!r) return undefined;
  const perRequest = (seconds: number) => (r.ok === 0 ? undefined : (seconds * 1000) / r.ok);
  const failed = r.non2xx || r.errors ? `, ${r.non2xx} non-2xx, ${r.errors} errors or timeouts` : '';
  if (failed) errors.push(`${side.label}, ${figure}: ${r.ok} answered${failed}`);
  log(`${side.label}, ${figure}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms${failed}`);
  return {
    ...r,
    serverCpuMsPerRequest: side.pid === undefined ? undefined : perRequest(cpuOf(side.pid) - server),
    rgwCpuMsPerRequest: rgw === undefined ? undefined : perRequest(cpuOf(rgw) - store),
  };
}

/** The share of one core `pid` keeps busy over `ms`, per cent. */
async function cpuPercentOver(pid: number, ms: number): Promise<number> {
  const before = cpuOf(pid);
  await sleep(ms);
  return ((cpuOf(pid) - before) * 100_000) / ms;
}

/** `fn`, or undefined with its error kept for the report: one side failing does not end the comparison. */
async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    errors.push(`${what}: ${(err as Error).message}`);
    log(`${what} failed: ${(err as Error).message}`);
    return undefined;
  }
}

/** OGX's log lines that report a failure (its request errors, tracebacks), the last 40 of them, and how many in all. */
function logProblems(text: string): { count: number; last: string[] } {
  const lines = text.split('\n').filter((l) => /error|exception|traceback|warn/i.test(l));
  return { count: lines.length, last: lines.slice(-40) };
}

async function countObjects(target: S3Target, bucket: string): Promise<number> {
  let count = 0;
  let token: string | undefined;
  do {
    const page = await target.client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    count += page.KeyCount ?? 0;
    token = page.NextContinuationToken;
  } while (token);
  return count;
}

/** Medians, the ratios the issue asks for, and the table. */
function derive(
  big: Record<string, Record<string, TransferRun[]>>,
  small: Record<string, Record<string, LoadRun[]>>,
  idle: Record<string, Record<string, number>>,
  lost: Record<string, { acknowledged: number; objects: number }>,
) {
  const med = <T>(runs: T[] | undefined, pick: (r: T) => number | undefined): Summary | undefined => {
    const values = (runs ?? []).map(pick).filter((v): v is number => v !== undefined);
    return values.length ? summarize(values) : undefined;
  };
  const rows: string[][] = [];
  const figures: Record<string, unknown> = {};
  const cpuRatios: Record<string, number> = {};
  const num = (s: Summary | undefined, digits: number) => (s ? s.median.toFixed(digits) : '–');
  const ratio = (a: Summary | undefined, b: Summary | undefined, digits = 2) =>
    a && b ? `${(a.median / b.median).toFixed(digits)}×` : '–';
  /** The row of a figure's server CPU (per GiB or per request): the peer's ÷ the gateway's is the gateway's throughput per CPU-second ÷ the peer's. */
  const cpuRow = (name: string, what: string, [g, o]: (Summary | undefined)[], digits: number): string[] => {
    if (g && o) cpuRatios[name] = o.median / g.median;
    const r = cpuRatios[name];
    return [
      `${name}: ${what}`,
      num(g, digits),
      num(o, digits),
      '–',
      r === undefined ? '–' : `${r.toFixed(2)}× per CPU-s`,
      r === undefined ? '' : `≥ ${CPU_TARGET}×: ${r >= CPU_TARGET ? 'met' : 'MISSED'}`,
    ];
  };

  for (const [name, bySide] of Object.entries(big)) {
    const g = bySide.gateway;
    const o = bySide.ogx;
    const d = bySide.direct;
    const s = {
      mibps: [med(g, (r) => r.mibps), med(o, (r) => r.mibps), med(d, (r) => r.mibps)],
      server: [med(g, (r) => r.serverCpuPerGiB), med(o, (r) => r.serverCpuPerGiB)],
      rgw: [med(g, (r) => r.rgwCpuPerGiB), med(o, (r) => r.rgwCpuPerGiB), med(d, (r) => r.rgwCpuPerGiB)],
      peak: [med(g, (r) => r.peakRssMiB), med(o, (r) => r.peakRssMiB)],
      growth: [med(g, (r) => r.growthMiB), med(o, (r) => r.growthMiB)],
    };
    figures[name] = s;
    rows.push(
      [`${name}: MiB/s`, ...s.mibps.map((x) => num(x, 0)), ratio(s.mibps[0], s.mibps[1]), ''],
      cpuRow(name, 'server CPU s/GiB', s.server, 2),
      [`${name}: radosgw CPU s/GiB`, ...s.rgw.map((x) => num(x, 2)), '', ''],
      [`${name}: server peak RSS MiB (+ growth)`, ...s.peak.map((x, i) => peakCell(x, s.growth[i])), '–', '', ''],
    );
  }

  for (const [name, bySide] of Object.entries(small)) {
    const pick = (f: (r: LoadRun) => number | undefined) =>
      [bySide.gateway, bySide.ogx, bySide.direct].map((runs) => med(runs, f));
    const s = {
      rps: pick((r) => r.rps),
      p50Ms: pick((r) => r.p50Ms),
      p99Ms: pick((r) => r.p99Ms),
      serverCpuMsPerRequest: pick((r) => r.serverCpuMsPerRequest),
      rgwCpuMsPerRequest: pick((r) => r.rgwCpuMsPerRequest),
      failed: [bySide.gateway, bySide.ogx, bySide.direct].map(
        (runs) => `${runs!.reduce((n, r) => n + r.non2xx, 0)} / ${runs!.reduce((n, r) => n + r.errors, 0)}`,
      ),
    };
    figures[name] = s;
    rows.push(
      [`${name}: req/s`, ...s.rps.map((x) => num(x, 0)), ratio(s.rps[0], s.rps[1]), ''],
      [`${name}: p50 / p99 ms`, ...s.p50Ms.map((x, i) => `${num(x, 0)} / ${num(s.p99Ms[i], 0)}`), '', ''],
      cpuRow(name, 'server CPU ms/request', s.serverCpuMsPerRequest, 3),
      [`${name}: radosgw CPU ms/request`, ...s.rgwCpuMsPerRequest.map((x) => num(x, 3)), '', ''],
      [`${name}: non-2xx / errors or timeouts, all runs`, ...s.failed, '', ''],
    );
  }

  for (const [moment, bySide] of Object.entries(idle)) {
    rows.push([`idle RSS MiB ${moment}`, bySide.gateway!.toFixed(0), bySide.ogx!.toFixed(0), '–', '', '']);
  }
  for (const [side, { acknowledged, objects }] of Object.entries(lost)) {
    rows.push([
      `${side === 'gateway' ? 'gateway' : 'OGX'}: small uploads acknowledged / objects in its bucket`,
      side === 'gateway' ? `${acknowledged} / ${objects}` : '',
      side === 'ogx' ? `${acknowledged} / ${objects}` : '',
      '',
      '',
      objects < acknowledged ? `${acknowledged - objects} LOST` : 'none lost',
    ]);
  }

  const memory = memoryVerdict(big, med);
  const header = ['figure (medians)', 'gateway', 'OGX remote::s3', 'direct S3', 'gateway ÷ OGX', 'target'];
  const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  return {
    figures,
    cpuRatios,
    cpuTarget: CPU_TARGET,
    idleRssMiB: idle,
    smallUploadsKept: lost,
    memory,
    table: `${table}\n\n${memory.line}`,
  };
}

function peakCell(peak: Summary | undefined, growth: Summary | undefined): string {
  return peak ? `${peak.median.toFixed(0)} (+${growth!.median.toFixed(0)})` : '–';
}

/**
 * Whether a server's memory is flat in file size: the growth of its peak RSS over its RSS before a
 * transfer, per MiB of file, between the smaller and the larger big file (the worse of upload and
 * download). Flat below 0.25 MiB per MiB; growing with the file at 0.5 and above.
 */
function memoryVerdict(
  big: Record<string, Record<string, TransferRun[]>>,
  med: (runs: TransferRun[] | undefined, pick: (r: TransferRun) => number | undefined) => Summary | undefined,
) {
  const [small, large] = BIG_SIZES.map((s) => s / MiB) as [number, number];
  const slopes: Record<string, number | undefined> = {};
  for (const side of ['gateway', 'ogx']) {
    const perDirection = ['upload', 'download'].flatMap((dir) => {
      const a = med(big[`${dir} ${small} MiB`]?.[side], (r) => r.growthMiB);
      const b = med(big[`${dir} ${large} MiB`]?.[side], (r) => r.growthMiB);
      return a && b ? [(b.median - a.median) / (large - small)] : [];
    });
    slopes[side] = perDirection.length ? Math.max(...perDirection) : undefined;
  }
  const describe = (s: number | undefined) =>
    s === undefined
      ? 'not measured'
      : `${s.toFixed(2)} MiB per MiB (${s < 0.25 ? 'flat' : s >= 0.5 ? 'grows with the file' : 'in between'})`;
  return {
    growthPerFileMiB: slopes,
    gatewayFlat: slopes.gateway !== undefined && slopes.gateway < 0.25,
    peerGrows: slopes.ogx !== undefined && slopes.ogx >= 0.5,
    line: `peak RSS growth per MiB of file, ${small} → ${large} MiB: gateway ${describe(slopes.gateway)}; OGX remote::s3 ${describe(slopes.ogx)}`,
  };
}
