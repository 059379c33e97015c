/**
 * `npm run bench:compare -- <other dist/main.js>`: the metadata figures and fs uploads and
 * downloads of this build and of another one (an older commit built elsewhere), measured
 * alternately on one data folder in one run, so a change's before/after is a ratio of neighbours
 * rather than of two runs on a drifting machine. Never part of `npm test`.
 *
 * Both builds run at once and each metadata load on one is followed at once by the same load on
 * the other (which goes first alternates): a shared VM can switch between a fast and a slow mode
 * every few minutes, and a pair of neighbours sees one mode far more often than two
 * measurements half a round apart do. The verdict is the median of the pairs'
 * ratios; the ratio of the two medians is printed next to it. Every round starts both builds
 * afresh: A/Bs that kept the same two processes throughout gave one change and a slightly larger
 * dose of it opposite verdicts, and two processes of one build can differ by more than many changes do.
 *
 *   git worktree add ../before <commit> && (cd ../before && npm ci && npm run build)
 *   npm run bench:compare -- ../before/dist/main.js
 *
 * Environment (all optional):
 *   COMPARE_ROUNDS=3         rounds; each starts both builds afresh and measures both on each figure
 *   COMPARE_PAIRS=3          neighbouring pairs of metadata measurements per figure and round
 *   COMPARE_SECONDS=3        load duration of each metadata measurement
 *   COMPARE_FILES=10000      files in the shared catalog (fs store, SQLite)
 *   COMPARE_UPLOAD_MIB=512   size of each upload (0: no upload figures); 3 chunked multipart
 *                            uploads per build and round (the bench's streaming client), and the
 *                            gateway's CPU time over them
 *   COMPARE_DOWNLOAD_MIB=512 size of the downloaded file (0: no download figures); 3 curl
 *                            downloads per build and round, and the gateway's CPU time over them
 *   COMPARE_STORE=fs         or s3: both builds on one bucket of a Ceph RGW the bench starts (or
 *                            BENCH_S3_ENDPOINT, as for `npm run bench`)
 *   FILES_S3_PAYLOAD_SIGNING passed to both builds on the s3 store (their default when unset)
 *   COMPARE_ANALYZE=0        1: run ANALYZE on the SQLite catalog once it is filled, as an operator
 *                            might (SQLite then plans with statistics, sqlite_stat4)
 *   COMPARE_OTHER_ENV={}     JSON object of environment variables for the other build only, to
 *                            compare a setting on one build: COMPARE_OTHER_ENV='{"GLIBC_TUNABLES":""}'
 *                            npm run bench:compare -- dist/main.js
 *   COMPARE_OTHER_NODE_FLAGS node flags for the other build only, space-separated, after the
 *                            shipped ones (package.json config.nodeFlags), so they can undo them:
 *                            COMPARE_OTHER_NODE_FLAGS=--initial-old-space-size=0 (V8's default)
 *
 * Each transfer figure also counts the gateway's minor page faults per GiB (a fault is a fresh page
 * the kernel had to map, and costs about what copying the page does) and its full garbage
 * collections per GiB (the gateways run with --trace-gc; each Mark-Compact walks the whole heap).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { processUsage } from './lib/cpu.js';
import { env } from './lib/env.js';
import { ROOT, fullGcs, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.js';
import { curlDownload, deleteFile, populate, uploadFile } from './lib/http.js';
import { requestsPerSecond } from './lib/load.js';
import { openS3Target } from './lib/s3.js';
import { MiB, mibps, summarize, timed } from './lib/stats.js';

const ROUNDS = env.int('COMPARE_ROUNDS', 3);
const SECONDS = env.int('COMPARE_SECONDS', 3);
const PAIRS = env.int('COMPARE_PAIRS', 3);
const FILES = env.int('COMPARE_FILES', 10_000);
const UPLOAD = env.mib('COMPARE_UPLOAD_MIB', 512, { min: 0 });
const DOWNLOAD = env.mib('COMPARE_DOWNLOAD_MIB', 512, { min: 0 });
const TRANSFERS_PER_ROUND = 3;
const STORE = env.oneOf('COMPARE_STORE', ['fs', 's3'] as const, 'fs');
const ANALYZE = env.flag('COMPARE_ANALYZE');
const OTHER_ENV = env.stringRecord('COMPARE_OTHER_ENV');
/** Checked by the gateways' own parser when they start. */
const PAYLOAD_SIGNING = env.text('FILES_S3_PAYLOAD_SIGNING');
const OTHER_NODE_FLAGS = env.words('COMPARE_OTHER_NODE_FLAGS');
const other = process.argv[2];
if (!other) throw new Error('usage: npm run bench:compare -- <path to the other build dist/main.js>');
await fs.access(other);
const builds = { this: path.join(ROOT, 'dist', 'main.js'), other: path.resolve(other) };

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'files-gateway-compare-'));
const BUCKET = 'bench-compare';
// RGW's memstore keeps objects in RAM (and stalls when it is full): the catalog's small files, the
// download and one round's uploads of one build.
const s3 =
  STORE === 's3'
    ? await openS3Target(tmp, Math.ceil((DOWNLOAD + TRANSFERS_PER_ROUND * UPLOAD) / (1024 * MiB)) + 1)
    : undefined;
await s3?.createBucket(BUCKET);
const gatewayEnv = {
  ...(s3 ? s3.gatewayEnv(BUCKET) : { FILES_STORE: 'fs' }),
  FILES_DATA_DIR: tmp,
  FILES_MAX_FILE_BYTES: String(Math.max(UPLOAD, DOWNLOAD, MiB)),
  ...(s3 && PAYLOAD_SIGNING !== undefined && { FILES_S3_PAYLOAD_SIGNING: PAYLOAD_SIGNING }),
};
const start = (build: 'this' | 'other') =>
  startGatewayProcess({
    env: build === 'other' ? { ...gatewayEnv, ...OTHER_ENV } : gatewayEnv,
    nodeArgs: ['--trace-gc', ...(build === 'other' ? OTHER_NODE_FLAGS : [])],
    logFile: path.join(tmp, `${build}.log`),
    main: builds[build],
  });
/** Appends `value` to the list under `key`, starting the list on first use. */
function append(lists: Record<string, number[]>, key: string, value: number): void {
  const list = lists[key] ?? [];
  lists[key] = list;
  list.push(value);
}
/** Every measurement, keyed `what|build`. */
const runs: Record<string, number[]> = {};
const record = (what: string, build: string, value: number) => append(runs, `${what}|${build}`, value);
/** Which build goes first in the n-th pair or round: alternating, so drift falls on both alike. */
const inOrder = (n: number) => (n % 2 === 0 ? (['this', 'other'] as const) : (['other', 'this'] as const));
/** this / other of each neighbouring pair, keyed by figure. */
const pairRatios: Record<string, number[]> = {};

/**
 * CPU time of a gateway so far in ms (all its threads: fs reads run on libuv's pool), its minor
 * page faults, and the full garbage collections --trace-gc has logged.
 */
function usage(gw: GatewayProcess): { cpuMs: number; faults: number; majorGcs: number } {
  const { cpuSeconds, faults } = processUsage(gw.pid);
  return { cpuMs: cpuSeconds * 1000, faults, majorGcs: fullGcs(gw) };
}

/**
 * TRANSFERS_PER_ROUND transfers of `bytes` on one build: each one's MiB/s, and the gateway's CPU
 * time and page faults per GiB over them.
 */
async function measureTransfers(
  gw: GatewayProcess,
  build: string,
  what: string,
  bytes: number,
  transfer: () => Promise<number>,
): Promise<void> {
  const before = usage(gw);
  for (let i = 0; i < TRANSFERS_PER_ROUND; i++) record(`${what} MiB/s`, build, await transfer());
  const after = usage(gw);
  const gib = (TRANSFERS_PER_ROUND * bytes) / (1024 * MiB);
  record(`${what} CPU ms/GiB`, build, (after.cpuMs - before.cpuMs) / gib);
  record(`${what} page faults/GiB`, build, (after.faults - before.faults) / gib);
  record(`${what} full GCs/GiB`, build, (after.majorGcs - before.majorGcs) / gib);
}

/** This round's transfer figures as pairs: this / other of the round's median MiB/s, CPU time and faults. */
function pairRound(what: string): void {
  for (const [figure, perRound] of [
    [`${what} MiB/s`, TRANSFERS_PER_ROUND],
    [`${what} CPU ms/GiB`, 1],
    [`${what} page faults/GiB`, 1],
  ] as const) {
    const [a, b] = (['this', 'other'] as const).map(
      (build) => summarize(runs[`${figure}|${build}`]!.slice(-perRound)).median,
    );
    append(pairRatios, figure, a! / b!);
  }
}

async function measureUploads(gw: GatewayProcess, build: string): Promise<void> {
  const uploaded: string[] = [];
  await measureTransfers(gw, build, 'upload', UPLOAD, async () => {
    const seconds = await timed(async () => uploaded.push(await uploadFile(gw.url, UPLOAD)));
    return mibps(UPLOAD, seconds);
  });
  for (const id of uploaded) await deleteFile(gw.url, id);
  await s3?.collectGarbage();
}

const measureDownloads = (gw: GatewayProcess, build: string, id: string) =>
  measureTransfers(gw, build, 'download', DOWNLOAD, () => curlDownload(`${gw.url}/v1/files/${id}/content`, DOWNLOAD));

try {
  const seed = await start('this');
  const ids = await populate(seed.url, FILES);
  const bigId = DOWNLOAD > 0 ? await uploadFile(seed.url, DOWNLOAD) : undefined;
  await seed.stop();
  if (ANALYZE) {
    const db = new Database(path.join(tmp, 'catalog.sqlite'));
    db.exec('ANALYZE');
    db.close();
  }
  const routes = {
    'retrieve by id': `/v1/files/${ids[Math.floor(ids.length / 2)]}`,
    'list page of 100': '/v1/files?limit=100',
  };
  for (let round = 0; round < ROUNDS; round++) {
    const gateways: Partial<Record<'this' | 'other', GatewayProcess>> = {};
    try {
      for (const build of ['this', 'other'] as const) gateways[build] = await start(build);
      const both = gateways as Record<'this' | 'other', GatewayProcess>;
      for (const gw of Object.values(both)) await requestsPerSecond(`${gw.url}${routes['list page of 100']}`, 2); // warm-up
      let pair = 0;
      for (const [what, route] of Object.entries(routes)) {
        for (let i = 0; i < PAIRS; i++, pair++) {
          const rps: Record<string, number> = {};
          for (const build of inOrder(pair)) {
            rps[build] = await requestsPerSecond(`${both[build].url}${route}`, SECONDS);
            record(`${what} req/s`, build, rps[build]);
          }
          append(pairRatios, `${what} req/s`, rps.this! / rps.other!);
        }
      }
      // Downloads before uploads: a process that has taken a large upload keeps more of its freed
      // memory from then on (glibc raises its thresholds), so a download after one is not what a
      // gateway that only serves reads does.
      if (bigId) {
        for (const build of inOrder(round)) await measureDownloads(both[build], build, bigId);
        pairRound('download');
      }
      if (UPLOAD > 0) {
        for (const build of inOrder(round)) await measureUploads(both[build], build);
        pairRound('upload');
      }
    } finally {
      for (const gw of Object.values(gateways)) await gw.stop();
    }
    process.stderr.write(`[bench:compare] round ${round + 1} of ${ROUNDS} done\n`);
  }
} finally {
  if (s3) {
    await s3.removeBucket(BUCKET).catch(() => undefined);
    await s3.stop();
  }
  await fs.rm(tmp, { recursive: true, force: true });
}

const lines = [
  '| figure | this build (min / median / max) | other build | ratio of medians | median of paired ratios (min / max) |',
  '| --- | --- | --- | ---: | ---: |',
];
const fmt = (s: ReturnType<typeof summarize>) => `${s.min.toFixed(0)} / ${s.median.toFixed(0)} / ${s.max.toFixed(0)}`;
const transferFigures = ['upload', 'download'].flatMap((what) => [
  `${what} MiB/s`,
  `${what} CPU ms/GiB`,
  `${what} page faults/GiB`,
  `${what} full GCs/GiB`,
]);
for (const what of ['retrieve by id req/s', 'list page of 100 req/s', ...transferFigures]) {
  if (!runs[`${what}|this`]) continue;
  const [a, b] = [summarize(runs[`${what}|this`]!), summarize(runs[`${what}|other`]!)];
  const paired = pairRatios[what] && summarize(pairRatios[what]);
  const pairedCell = paired
    ? `**${paired.median.toFixed(2)}** (${paired.min.toFixed(2)} / ${paired.max.toFixed(2)})`
    : '';
  lines.push(`| ${what} | ${fmt(a)} | ${fmt(b)} | ${(a.median / b.median).toFixed(2)} | ${pairedCell} |`);
}
const transfers = [
  UPLOAD > 0 && `${TRANSFERS_PER_ROUND} chunked uploads of ${UPLOAD / MiB} MiB`,
  DOWNLOAD > 0 && `${TRANSFERS_PER_ROUND} curl downloads of ${DOWNLOAD / MiB} MiB`,
].filter(Boolean);
const perRound = transfers.length > 0 ? `, ${transfers.join(' and ')} per build and round` : '';
process.stdout.write(
  `\n${lines.join('\n')}\n\n${STORE} store${ANALYZE ? ', catalog analysed' : ''}${Object.keys(OTHER_ENV).length ? `, the other build with ${JSON.stringify(OTHER_ENV)}` : ''}${OTHER_NODE_FLAGS.length ? `, the other build with ${OTHER_NODE_FLAGS.join(' ')}` : ''}; ${FILES} files, ${ROUNDS} rounds of ${PAIRS} pairs of ${SECONDS} s loads per figure, autocannon 32 connections${perRound}; ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}\n`,
);
