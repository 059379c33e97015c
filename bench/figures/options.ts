import { loadConfig } from '../../src/config.js';
import type { EnvReader } from '../lib/env.js';

/** The names BENCH_ONLY takes. */
export const FIGURE_NAMES = ['upload', 'download', 'rss', 'concurrent', 'small', 'idle', 'fs', 'metadata'] as const;
export type FigureName = (typeof FIGURE_NAMES)[number];

/** `npm run bench`'s settings, read once by the driver (bench/run.ts documents the variables). */
export interface RunOptions {
  /** Runs per figure. */
  runs: number;
  /** Bytes of the upload, download and fs figures' file. */
  size: number;
  /** Bytes of the memory figure's file. */
  big: number;
  /** Uploads at once in the concurrent figure, and each one's bytes. */
  concurrent: number;
  concurrentSize: number;
  /** Rows in the catalog for the metadata figures, and each measurement's load duration. */
  metaFiles: number;
  metaSeconds: number;
  /** The unrecorded load a fresh process gets before each metadata measurement. */
  metaWarmupSeconds: number;
  /** Each small-file load's duration, and its clients. */
  smallSeconds: number;
  smallConnections: number;
  /** How long the idle figure's gateway idles after its loads before the last reading. */
  idleSeconds: number;
  only: ReadonlySet<FigureName>;
  cpuProf: boolean;
  /** An existing S3 server (BENCH_S3_ENDPOINT) instead of a private Ceph RGW. */
  s3Endpoint: string | undefined;
  /** The gateway's part size and queue depth (its own config parser and defaults), used on both sides. */
  partSize: number;
  queueSize: number;
  /** FILES_S3_PAYLOAD_SIGNING for the gateway alone (checked by its own parser); unset: its default. */
  payloadSigning: string | undefined;
}

export function readRunOptions(env: EnvReader): RunOptions {
  const runs = env.int('BENCH_RUNS', 3);
  const size = env.mib('BENCH_SIZE_MIB', 1024);
  const big = env.mib('BENCH_BIG_MIB', 4096);
  const concurrent = env.int('BENCH_CONCURRENT', 64);
  const concurrentSize = env.mib('BENCH_CONCURRENT_MIB', 8);
  const metaFiles = env.int('BENCH_META_FILES', 10_000);
  const metaSeconds = env.int('BENCH_META_SECONDS', 10);
  const smallSeconds = env.int('BENCH_SMALL_SECONDS', 10);
  const idleSeconds = env.int('BENCH_IDLE_SECONDS', 60, { min: 0 });
  const only = new Set(env.listOf('BENCH_ONLY', FIGURE_NAMES, FIGURE_NAMES));
  const cpuProf = env.flag('BENCH_CPU_PROF');
  const payloadSigning = env.text('FILES_S3_PAYLOAD_SIGNING');
  const { partSizeBytes, queueSize } = loadConfig({
    FILES_S3_BUCKET: 'bench',
    FILES_S3_PART_SIZE: env.text('FILES_S3_PART_SIZE'),
    FILES_S3_QUEUE_SIZE: env.text('FILES_S3_QUEUE_SIZE'),
    FILES_S3_PAYLOAD_SIGNING: payloadSigning,
  }).s3!;
  return Object.freeze({
    runs,
    size,
    big,
    concurrent,
    concurrentSize,
    metaFiles,
    metaSeconds,
    metaWarmupSeconds: 2,
    smallSeconds,
    smallConnections: 16,
    idleSeconds,
    only,
    cpuProf,
    s3Endpoint: env.text('BENCH_S3_ENDPOINT'),
    partSize: partSizeBytes,
    queueSize,
    payloadSigning,
  });
}
