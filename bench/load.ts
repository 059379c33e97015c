/**
 * `npm run bench:load`: a bounded load run against the built gateway as a child process, on the fs
 * store and on S3 (a private Ceph RGW). LOAD_CLIENTS clients loop until LOAD_SECONDS have passed:
 * each uploads a file of a size drawn between 1 KiB and LOAD_MAX_MIB (log-uniform, from a seed),
 * downloads it back, compares sha256, and deletes it. Pass: zero errors, every hash equal, and the
 * gateway's RSS bounded. Loopback only; never part of `npm test`.
 *
 * Environment (all optional):
 *   LOAD_SECONDS=180  LOAD_CLIENTS=64  LOAD_MAX_MIB=64  LOAD_STORES=fs,s3  LOAD_SEED=1
 *   BENCH_TMP         where data goes (default: the OS temp dir)
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { deterministicStream } from '../test/helpers/bytes.js';
import { seededRandom } from '../test/helpers/random.js';
import { streamingDownload, streamingUpload } from '../test/helpers/stream-upload.js';
import { env } from './lib/env.js';
import { sampleRss, idleRss, startGatewayProcess } from './lib/gateway-process.js';
import { deleteFile } from './lib/http.js';
import { openS3Target } from './lib/s3.js';
import { MiB } from './lib/stats.js';
import { runTempDir } from './lib/tmp.js';

const SECONDS = env.int('LOAD_SECONDS', 180);
const CLIENTS = env.int('LOAD_CLIENTS', 64);
const MAX_BYTES = env.mib('LOAD_MAX_MIB', 64);
const STORES = env.listOf('LOAD_STORES', ['fs', 's3'] as const, ['fs', 's3']);
const SEED = env.int('LOAD_SEED', 1, { min: 0 });
const MIN_BYTES = 1024;

const log = (msg: string) => process.stderr.write(`[bench:load ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

interface Outcome {
  store: string;
  operations: number;
  bytes: number;
  errors: string[];
  mismatches: number;
  idleRssMiB: number;
  peakRssMiB: number;
  mibPerSecond: number;
}

async function loadOne(store: string, tmp: string): Promise<Outcome> {
  let env: Record<string, string> = {
    FILES_DATA_DIR: path.join(tmp, `${store}-data`),
    FILES_MAX_FILE_BYTES: String(MAX_BYTES),
  };
  const s3 =
    store === 's3' ? await openS3Target(tmp, Math.ceil((CLIENTS * MAX_BYTES * 2) / 1024 / MiB) + 2) : undefined;
  const bucket = 'load';
  if (s3) {
    await s3.createBucket(bucket);
    env = { ...env, ...s3.gatewayEnv(bucket) };
  }
  const gw = await startGatewayProcess({ env, logFile: path.join(tmp, `${store}-gateway.log`) });
  const idle = await idleRss(gw.pid);
  const rss = sampleRss(gw.pid);
  const outcome = { store, operations: 0, bytes: 0, errors: [] as string[], mismatches: 0 };
  const deadline = Date.now() + SECONDS * 1000;
  const started = Date.now();
  const client = async (n: number) => {
    const next = seededRandom(SEED * 1000 + n);
    for (let i = 0; Date.now() < deadline && outcome.errors.length < 10; i++) {
      const size = Math.round(MIN_BYTES * (MAX_BYTES / MIN_BYTES) ** next());
      const source = deterministicStream(size, `${SEED}-${n}-${i}`);
      try {
        const up = await streamingUpload(`${gw.url}/v1/files`, source.stream, `load-${n}-${i}.bin`);
        if (up.status !== 200) throw new Error(`upload answered ${up.status} ${JSON.stringify(up.json)}`);
        const down = await streamingDownload(`${gw.url}/v1/files/${up.json.id}/content`);
        if (down.status !== 200 || down.bytes !== size)
          throw new Error(`download answered ${down.status} with ${down.bytes} of ${size} bytes`);
        if (down.sha256 !== (await source.sha256)) outcome.mismatches++;
        await deleteFile(gw.url, up.json.id);
        outcome.operations++;
        outcome.bytes += 2 * size;
      } catch (err) {
        outcome.errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, (_, n) => client(n)));
  const elapsed = (Date.now() - started) / 1000;
  const peak = rss.stop().peak;
  await gw.stop();
  if (s3) {
    await s3.removeBucket(bucket);
    await s3.stop();
  }
  return { ...outcome, idleRssMiB: idle / MiB, peakRssMiB: peak / MiB, mibPerSecond: outcome.bytes / MiB / elapsed };
}

async function main(): Promise<void> {
  const tmp = await runTempDir('files-gateway-load-');
  const results: Outcome[] = [];
  try {
    for (const store of STORES) {
      log(`${store}: ${CLIENTS} clients for ${SECONDS} s, files of 1 KiB to ${MAX_BYTES / MiB} MiB (seed ${SEED})`);
      results.push(await loadOne(store, tmp));
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  console.log('| store | round trips | MiB/s (up + down) | errors | sha256 mismatches | idle RSS MiB | peak RSS MiB |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    console.log(
      `| ${r.store} | ${r.operations} | ${r.mibPerSecond.toFixed(1)} | ${r.errors.length} | ${r.mismatches} | ${r.idleRssMiB.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} |`,
    );
    for (const e of r.errors.slice(0, 5)) console.log(`  ${r.store} error: ${e}`);
  }
  if (results.some((r) => r.errors.length > 0 || r.mismatches > 0 || r.operations === 0)) process.exitCode = 1;
}

await main();
