import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  fn: string;
  ms: number;
  share: number;
}

/**
 * What the .cpuprofile files in `dir` (from node --cpu-prof) spent their time on: the `top`
 * functions by self time, and the gateway's own functions (dist/) by total time, callees included,
 * which is where a request's time goes (self time of a native call such as a SQLite statement is
 * charged to the JavaScript function that made it). Open the files in Chrome DevTools or speedscope
 * for flame graphs.
 */
export function summarizeProfiles(dir: string, top = 15): { self: ProfileLine[]; gatewayTotal: ProfileLine[] } {
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as CpuProfile;
    const keys = new Map<number, string>();
    const parent = new Map<number, number>();
    for (const n of profile.nodes) {
      const f = n.callFrame;
      const where = f.url
        ? `${f.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${f.lineNumber + 1}`
        : '';
      keys.set(n.id, `${f.functionName || '(anonymous)'} ${where}`.trim());
      for (const c of n.children ?? []) parent.set(c, n.id);
    }
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      all += us;
      self.set(keys.get(id)!, (self.get(keys.get(id)!) ?? 0) + us);
      // Each function once per sample, however deep it recurses.
      const seen = new Set<string>();
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) seen.add(keys.get(at)!);
      for (const key of seen) total.set(key, (total.get(key) ?? 0) + us);
    });
  }
  const lines = (m: Map<string, number>, keep: (fn: string) => boolean) =>
    [...m.entries()]
      .filter(([fn]) => keep(fn))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: us / 1000, share: all > 0 ? us / all : 0 }));
  return { self: lines(self, () => true), gatewayTotal: lines(total, (fn) => fn.includes(' dist/')) };
}
