/**
 * `npm run bench` runs this, then bench/uploads.ts: what the gateway costs on top of its store, as
 * ratios of medians measured side by side in one run (docs/performance.md#method). Never part of
 * `npm test`.
 *
 * The driver: it reads the options (bench/figures/options.ts), runs the selected figures in the
 * order below (one module each under bench/figures/), releases each shared server once no later
 * figure uses it, and writes and prints the results (bench/figures/report.ts).
 *
 * Environment (all optional):
 *   BENCH_RUNS=3            runs per figure
 *   BENCH_SIZE_MIB=1024     upload/download/fs file size
 *   BENCH_BIG_MIB=4096      file size of the memory figure
 *   BENCH_CONCURRENT=64     concurrent uploads of BENCH_CONCURRENT_MIB=8 each
 *   BENCH_META_FILES=10000  rows in the catalog for the metadata figures
 *   BENCH_META_SECONDS=10   load duration of each metadata measurement
 *   BENCH_SMALL_SECONDS=10  load duration of each 64 KiB file measurement (16 clients)
 *   BENCH_IDLE_SECONDS=60   how long the idle figure's gateway idles before its last RSS reading
 *   BENCH_ONLY=upload,download,rss,concurrent,small,idle,fs,metadata   a subset of the figures
 *   BENCH_CPU_PROF=1        run every gateway with --cpu-prof; print its top functions by self time and its
 *                           own (dist/) functions by total time; keep the .cpuprofile files under bench/results/
 *   BENCH_TMP               where data goes (default: the OS temp dir)
 *   BENCH_S3_ENDPOINT, BENCH_S3_REGION, BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY
 *                           an existing S3 server on loopback instead of a private Ceph RGW
 *   FILES_S3_PART_SIZE, FILES_S3_QUEUE_SIZE   passed to the gateway; the direct side uses the same
 *                           (the minimal relay keeps lib-storage's defaults)
 *
 * A bad value (not a whole number, below its minimum, an unknown BENCH_ONLY name) stops the run
 * before it starts, naming the variable (bench/lib/env.ts).
 */
import { env } from './lib/env.js';
import { concurrent } from './figures/concurrent.js';
import { BenchContext } from './figures/context.js';
import { download } from './figures/download.js';
import type { Figure, FigureModule } from './figures/figure.js';
import { fsStore } from './figures/fs.js';
import { idle } from './figures/idle.js';
import { metadata } from './figures/metadata.js';
import { readRunOptions } from './figures/options.js';
import { report } from './figures/report.js';
import { rss } from './figures/rss.js';
import { small } from './figures/small.js';
import { upload } from './figures/upload.js';

/**
 * In the order they run: the three on the shared S3 gateway and the minimal relay (download reads
 * the file the upload runs leave), then the small files, memory and idle figures on fresh S3
 * gateways, then the fs store's figures.
 */
const FIGURES: readonly FigureModule[] = [upload, download, concurrent, small, rss, idle, fsStore, metadata];

const options = readRunOptions(env);
const ctx = await BenchContext.create(options);
const started = Date.now();
const figures: Figure[] = [];
const selected = FIGURES.filter((f) => options.only.has(f.name));
try {
  for (const [i, figure] of selected.entries()) {
    figures.push(...(await figure.measure(ctx)));
    await ctx.release(new Set(selected.slice(i + 1).flatMap((f) => f.uses)));
  }
} finally {
  await ctx.close();
}
report(ctx, figures, started);
