import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../lib/gateway-process.js';
import type { ProfileLine } from '../lib/profile.js';
import { MiB, type Summary } from '../lib/stats.js';
import type { BenchContext } from './context.js';
import { describeCpu, digitsOf, type Figure } from './figure.js';

const fmt = (s: Summary | undefined, digits: number) =>
  s ? `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}` : '';

/** The figures as a table: each target, the gateway's value, the baseline's and met or missed. */
export function table(figures: Figure[]): string {
  const rows = figures.map((f) => {
    const digits = digitsOf(f.unit);
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
  const header = [
    'figure',
    'unit',
    'gateway min / median / max',
    'baseline min / median / max',
    'ratio',
    'paired min / median / max',
    'target',
    '',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The S3 figures' CPU accounting, under the table. */
const cpuLines = (figures: Figure[]): string =>
  figures
    .filter((f) => f.cpu)
    .map((f) => `${describeCpu(f, f.cpu!)}\n`)
    .join('');

/**
 * Writes bench/results/<stamp>.json (the format earlier results files have, which comparisons
 * read) and prints the table, the CPU accounting and, with BENCH_CPU_PROF=1, the profiles.
 */
/** What a results file says of the machine. */
export const machine = () => ({
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
  node: process.version,
});

/** Writes `result` as bench/results/<name>.json; returns its path from the checkout's root. */
export function saveResults(name: string, result: unknown): string {
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const out = path.join(dir, `${name}.json`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  return path.relative(ROOT, out);
}

export function report(ctx: BenchContext, figures: Figure[], started: number): void {
  const o = ctx.options;
  const result = {
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine: machine(),
    settings: {
      runs: o.runs,
      sizeMiB: o.size / MiB,
      bigMiB: o.big / MiB,
      concurrent: o.concurrent,
      concurrentMiB: o.concurrentSize / MiB,
      metaFiles: o.metaFiles,
      metaSeconds: o.metaSeconds,
      smallSeconds: o.smallSeconds,
      smallConnections: o.smallConnections,
      idleSeconds: o.idleSeconds,
      partSizeMiB: o.partSize / MiB,
      queueSize: o.queueSize,
      s3: ctx.s3Kind,
      loadClient: `autocannon (separate process), 32 connections (metadata), ${o.smallConnections} (small files)`,
    },
    figures,
    ...(o.cpuProf && { profiles: ctx.profiles }),
  };
  const out = saveResults(ctx.stamp, result);
  process.stdout.write(
    `\n${table(figures)}\n${cpuLines(figures)}\n${os.cpus().length} cores (${result.machine.cpuModel}), ${result.machine.memoryGiB} GiB, Node ${process.version}; ${o.runs} runs per figure; ${result.durationSeconds} s\nresults: ${out}\n`,
  );
  if (o.cpuProf) {
    const show = (lines: ProfileLine[]) =>
      lines
        .map((t) => `  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.ms.toFixed(0).padStart(7)} ms  ${t.fn}`)
        .join('\n');
    for (const [label, p] of Object.entries(ctx.profiles)) {
      process.stdout.write(
        `\ngateway ${label}: top self time\n${show(p.self)}\ngateway ${label}: its own functions by total time\n${show(p.gatewayTotal)}\n`,
      );
    }
    process.stdout.write(
      `\nprofiles: ${path.relative(ROOT, path.join(ctx.resultsDir, `${ctx.stamp}-prof`))} (.cpuprofile: Chrome DevTools or speedscope for flame graphs)\n`,
    );
  }
}
