import { setTimeout as sleep } from 'node:timers/promises';
import { sampleValue, scrape } from '../../test/helpers/metrics.js';
import { type GatewayProcess, idleRss } from '../lib/gateway-process.js';
import { deleteFile, downloadDiscard, uploadFile } from '../lib/http.js';
import { MiB } from '../lib/stats.js';
import type { BenchContext } from './context.js';
import { type Figure, type FigureModule, judge, log, type Target } from './figure.js';
import { smallLoad, smallUpload } from './small.js';

/** Idle RSS, and the parts of it the gateway's own /metrics can name (prom-client's default gauges), in MiB. */
interface MemoryReading {
  what: string;
  rss: number;
  /** V8's heap, live objects and garbage alike */
  v8Heap: number;
  /** memory V8 accounts outside its heap: Buffers still referenced or not yet collected */
  external: number;
  /** the rest: code, native libraries, SQLite, and what the allocator keeps after it is freed */
  rest: number;
}

async function readMemory(gw: GatewayProcess, what: string): Promise<MemoryReading> {
  const rss = (await idleRss(gw.pid)) / MiB;
  const samples = await scrape(gw.url);
  const gauge = (name: string) => {
    if (!samples.some((s) => s.name === name)) throw new Error(`idle: /metrics has no ${name}`);
    return sampleValue(samples, name) / MiB;
  };
  const v8Heap = gauge('nodejs_heap_size_total_bytes');
  const external = gauge('nodejs_external_memory_bytes');
  return { what, rss, v8Heap, external, rest: rss - v8Heap - external };
}

const describe = (r: MemoryReading) =>
  `${r.what} ${r.rss.toFixed(0)} MiB (V8 heap ${r.v8Heap.toFixed(0)}, external ${r.external.toFixed(0)}, rest ${r.rest.toFixed(0)})`;

/**
 * The run on one fresh gateway: idle readings before any load, after two files of `size` up and
 * down at once, after `smallSeconds` of the small figure's 64 KiB uploads, after `idleSeconds`.
 */
async function loadThenIdle(ctx: BenchContext, gw: GatewayProcess): Promise<MemoryReading[]> {
  const { size, smallSeconds, idleSeconds } = ctx.options;
  const readings = [await readMemory(gw, 'before any load')];
  await Promise.all(
    [0, 1].map(async () => {
      const id = await uploadFile(gw.url, size);
      await downloadDiscard(`${gw.url}/v1/files/${id}/content`, size);
      await deleteFile(gw.url, id);
    }),
  );
  readings.push(await readMemory(gw, `after 2 x ${size / MiB} MiB up and down`));
  await smallLoad(ctx, gw.pid, `${gw.url}/v1/files`, await smallUpload(ctx), { seconds: smallSeconds });
  readings.push(await readMemory(gw, `after ${smallSeconds} s of 64 KiB uploads`));
  await sleep(idleSeconds * 1000);
  readings.push(await readMemory(gw, `after ${idleSeconds} s idle`));
  return readings;
}

/**
 * Whether the memory a load takes comes back, on the gateway as it ships and, as the reference
 * that shows what its allocator settings keep (docs/decisions/0005), on one with glibc's default
 * settings; each fresh, on a bucket of its own, one after the other. The target: as shipped, idle
 * RSS after the idle at most 64 MiB above its idle RSS before any load.
 */
export const idle: FigureModule = {
  name: 'idle',
  uses: ['s3'],
  async measure(ctx) {
    const { size, smallSeconds, idleSeconds } = ctx.options;
    log(`idle: 2 x ${size / MiB} MiB up and down, ${smallSeconds} s of 64 KiB uploads, ${idleSeconds} s idle`);
    const settings: { label: string; name: string; env: Record<string, string>; target: Target }[] = [
      { label: 'idle', name: 'idle RSS', env: {}, target: { maxOver: 64 } },
      {
        label: 'idle-glibc',
        name: "idle RSS, glibc's default allocator settings,",
        env: { GLIBC_TUNABLES: '' },
        target: {},
      },
    ];
    const figures: Figure[] = [];
    for (const { label, name, env, target } of settings) {
      const readings = await ctx.onOwnBucket(label, (gw) => loadThenIdle(ctx, gw), env);
      log(`${name}: ${readings.map(describe).join(', ')}`);
      const [before, ...after] = readings;
      after.forEach((r, i) => {
        const last = i === after.length - 1;
        const figure = judge(`${name} ${r.what}`, 'MiB', [r.rss], last ? target : {}, {
          name: 'before any load',
          runs: [before!.rss],
        });
        figure.detail = { before, after: r };
        figures.push(figure);
      });
    }
    return figures;
  },
};
