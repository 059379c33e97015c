import os from 'node:os';
import { ratioOfMedians, summarize, type Summary } from '../lib/stats.js';
import type { BenchContext, Fixture } from './context.js';
import type { FigureName } from './options.js';
import type { Transfer } from './transfers.js';

/** One row of the table and of the results file's `figures`. */
export interface Figure {
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

export interface CpuAccount {
  /** Medians, CPU seconds per GiB: the whole machine on the gateway's side, the gateway itself, the whole machine on the baseline's. */
  machineCpuPerGiB: number;
  gatewayCpuPerGiB: number;
  baselineMachineCpuPerGiB: number;
  busyCores: number;
  baselineBusyCores: number;
  /** baseline's machine CPU per GiB / the gateway side's: the throughput ratio when the cores are the limit */
  cpuBoundRatio: number;
}

/** A figure of `npm run bench` (BENCH_ONLY names it): measures on the context's servers, returns its rows. */
export interface FigureModule {
  name: FigureName;
  /** The shared servers it uses; the driver releases each one once no later figure uses it. */
  uses: readonly Fixture[];
  measure(ctx: BenchContext): Promise<Figure[]>;
}

export const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

export const describeCpu = (f: Figure, cpu: CpuAccount) =>
  `${f.name}: CPU s/GiB of the whole machine ${cpu.machineCpuPerGiB.toFixed(2)} (the gateway ${cpu.gatewayCpuPerGiB.toFixed(2)}), ` +
  `${f.baselineName} ${cpu.baselineMachineCpuPerGiB.toFixed(2)}; busy cores ${cpu.busyCores.toFixed(2)} and ${cpu.baselineBusyCores.toFixed(2)} ` +
  `of ${os.cpus().length}; CPU-bound ratio ${cpu.cpuBoundRatio.toFixed(3)}`;

/** A figure against its baseline, logged; without `minRatio` it is a reference with no target. */
export function compare(
  name: string,
  unit: string,
  gateway: number[],
  baselineName: string,
  baseline: number[],
  minRatio?: number,
): Figure {
  const g = summarize(gateway);
  const b = summarize(baseline);
  const ratio = ratioOfMedians(g, b);
  const pairedRatio = summarize(gateway.map((value, i) => value / baseline[i]!));
  const target = minRatio === undefined ? 'reference' : `>= ${minRatio.toFixed(2)}`;
  const figure: Figure = {
    name,
    unit,
    gateway: g,
    baselineName,
    baseline: b,
    ratio,
    pairedRatio,
    target,
    met: minRatio === undefined || ratio >= minRatio,
  };
  log(
    `${name}: gateway ${g.median.toFixed(1)} ${unit}, ${baselineName} ${b.median.toFixed(1)} ${unit}, ratio ${ratio.toFixed(3)} (paired ${pairedRatio.median.toFixed(3)})`,
  );
  return figure;
}

/**
 * An S3 figure with where the machine's CPU went. When the cores are the limit (busy cores near
 * their count on both sides), throughput goes as the inverse of the CPU a GiB costs the whole
 * machine (S3 server, client and gateway alike), and the ratio of those costs is what the
 * throughput ratio comes to on this machine. The kernel counts CPU in clock ticks (10 ms) and the
 * machine's share includes starting curl, which curl's own timing leaves out: read it from
 * transfers of a GiB, not from a quick run's few MiB.
 */
export function compareAccounted(
  name: string,
  gateway: Transfer[],
  baselineName: string,
  baseline: Transfer[],
  minRatio?: number,
): Figure {
  const figure = compare(
    name,
    'MiB/s',
    gateway.map((t) => t.mibps),
    baselineName,
    baseline.map((t) => t.mibps),
    minRatio,
  );
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
  return figure;
}
