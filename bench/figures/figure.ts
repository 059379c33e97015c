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
  /** The same transfers through the minimal relay (bench/lib/minimal-relay.ts), where the figure has that side. */
  relay?: { mibps: number; machineCpuPerGiB: number; relayCpuPerGiB: number };
}

/**
 * What a figure is judged on; every bound given must hold, and without any it is a reference.
 * The ratio is the gateway's median over the baseline's.
 */
export interface Target {
  minRatio?: number;
  maxRatio?: number;
  /** The gateway's median at most, in the figure's unit (its largest run with `everyRun`). */
  max?: number;
  everyRun?: boolean;
  /** The gateway's median at most this much above the baseline's, in the figure's unit. */
  maxOver?: number;
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
  `${f.baselineName} ${cpu.baselineMachineCpuPerGiB.toFixed(2)}` +
  (cpu.relay
    ? `, minimal relay ${cpu.relay.machineCpuPerGiB.toFixed(2)} (the relay ${cpu.relay.relayCpuPerGiB.toFixed(2)}, ${cpu.relay.mibps.toFixed(1)} MiB/s)`
    : '') +
  `; busy cores ${cpu.busyCores.toFixed(2)} and ${cpu.baselineBusyCores.toFixed(2)} ` +
  `of ${os.cpus().length}; CPU-bound ratio ${cpu.cpuBoundRatio.toFixed(3)}`;

/** Decimals a value of `unit` is printed with. */
export const digitsOf = (unit: string): number =>
  unit === 'req/s' ? 0 : unit.startsWith('CPU') || unit === 's' ? 2 : 1;

function describeTarget(t: Target, unit: string): string {
  const bounds = [
    t.max !== undefined && `<= ${t.max.toFixed(digitsOf(unit))} ${unit}${t.everyRun ? ' every run' : ''}`,
    t.maxOver !== undefined && `<= baseline + ${t.maxOver} ${unit}`,
    t.minRatio !== undefined && `ratio >= ${t.minRatio.toFixed(2)}`,
    t.maxRatio !== undefined && `ratio <= ${t.maxRatio.toFixed(2)}`,
  ].filter((b): b is string => typeof b === 'string');
  return bounds.length ? bounds.join(', ') : 'reference';
}

/**
 * A figure of the gateway, against a baseline measured side by side where it has one, judged by
 * `target` (a number: the least ratio), and logged.
 */
export function judge(
  name: string,
  unit: string,
  gateway: number[],
  target: Target | number = {},
  baseline?: { name: string; runs: number[] },
): Figure {
  const t: Target = typeof target === 'number' ? { minRatio: target } : target;
  const g = summarize(gateway);
  const b = baseline && summarize(baseline.runs);
  const ratio = b && ratioOfMedians(g, b);
  const pairedRatio = b && summarize(gateway.map((value, i) => value / b.runs[i]!));
  const met =
    (t.max === undefined || (t.everyRun ? g.max : g.median) <= t.max) &&
    (t.maxOver === undefined || (b !== undefined && g.median - b.median <= t.maxOver)) &&
    (t.minRatio === undefined || (ratio !== undefined && ratio >= t.minRatio)) &&
    (t.maxRatio === undefined || (ratio !== undefined && ratio <= t.maxRatio));
  const figure: Figure = {
    name,
    unit,
    gateway: g,
    ...(baseline && { baselineName: baseline.name, baseline: b, ratio, pairedRatio }),
    target: describeTarget(t, unit),
    met,
  };
  const d = digitsOf(unit);
  log(
    `${name}: gateway ${g.median.toFixed(d)} ${unit}` +
      (b
        ? `, ${baseline.name} ${b.median.toFixed(d)} ${unit}, ratio ${ratio!.toFixed(3)} (paired ${pairedRatio!.median.toFixed(3)})`
        : '') +
      (figure.target === 'reference' ? '' : `; target ${figure.target}: ${met ? 'met' : 'MISSED'}`),
  );
  return figure;
}

/** A figure against its baseline, logged; without `target` it is a reference. */
export const compare = (
  name: string,
  unit: string,
  gateway: number[],
  baselineName: string,
  baseline: number[],
  target?: Target | number,
): Figure => judge(name, unit, gateway, target, { name: baselineName, runs: baseline });

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
  relay?: Transfer[],
): Figure {
  const figure = compare(name, 'MiB/s', mibpsOf(gateway), baselineName, mibpsOf(baseline), minRatio);
  const median = (ts: Transfer[], f: (t: Transfer) => number) => summarize(ts.map(f)).median;
  const busyCores = (ts: Transfer[]) => median(ts, (t) => (t.machineCpu * t.mibps) / 1024);
  const cpu: CpuAccount = {
    machineCpuPerGiB: median(gateway, (t) => t.machineCpu),
    gatewayCpuPerGiB: median(gateway, (t) => t.serverCpu),
    baselineMachineCpuPerGiB: median(baseline, (t) => t.machineCpu),
    busyCores: busyCores(gateway),
    baselineBusyCores: busyCores(baseline),
    cpuBoundRatio: median(baseline, (t) => t.machineCpu) / median(gateway, (t) => t.machineCpu),
    ...(relay && {
      relay: {
        mibps: median(relay, (t) => t.mibps),
        machineCpuPerGiB: median(relay, (t) => t.machineCpu),
        relayCpuPerGiB: median(relay, (t) => t.serverCpu),
      },
    }),
  };
  figure.cpu = cpu;
  log(describeCpu(figure, cpu));
  return figure;
}

const mibpsOf = (ts: Transfer[]) => ts.map((t) => t.mibps);

/** The three sides of an S3 transfer figure, interleaved run by run. */
export interface TransferSides {
  gateway: Transfer[];
  relay: Transfer[];
  direct: Transfer[];
}

/** The whole machine's CPU per GiB through the gateway at most 1/0.90 of it without: a CPU-bound ratio of at least 0.90. */
const MACHINE_CPU_RATIO = 1 / 0.9;

/**
 * An S3 transfer figure's rows: throughput against S3 straight (`minRatio`); the gateway's own CPU
 * per GiB (utime + stime of its process) against the minimal relay's, at most `cpu.max` and, where
 * given, at most `cpu.maxRatio` of the relay's; and the whole machine's CPU per GiB against S3
 * straight, at most 1/0.90 of it (the CPU-bound ratio at least 0.90).
 */
export function transferFigures(
  name: string,
  sides: TransferSides,
  directName: string,
  minRatio: number,
  cpu: { max: number; maxRatio?: number },
): Figure[] {
  const machineCpu = (ts: Transfer[]) => ts.map((t) => t.machineCpu);
  return [
    compareAccounted(name, sides.gateway, directName, sides.direct, minRatio, sides.relay),
    compare(
      `${name}: gateway CPU`,
      'CPU s/GiB',
      sides.gateway.map((t) => t.serverCpu),
      'minimal relay',
      sides.relay.map((t) => t.serverCpu),
      cpu,
    ),
    compare(`${name}: machine CPU`, 'CPU s/GiB', machineCpu(sides.gateway), directName, machineCpu(sides.direct), {
      maxRatio: MACHINE_CPU_RATIO,
    }),
  ];
}
