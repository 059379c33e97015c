/** min/median/max of one side of a figure, with every run kept for the JSON report. */
export interface Summary {
  min: number;
  median: number;
  max: number;
  runs: number[];
}

export function summarize(values: number[]): Summary {
  if (values.length === 0) throw new Error('no runs to summarize');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { min: sorted[0]!, median, max: sorted[sorted.length - 1]!, runs: values };
}

/** On a shared, noisy machine only medians measured side by side in one run compare fairly. */
export const ratioOfMedians = (a: Summary, b: Summary): number => a.median / b.median;

export const MiB = 1024 * 1024;

/** Bytes per second as MiB/s. */
export const mibps = (bytes: number, seconds: number): number => bytes / MiB / seconds;

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** MiB/s of `fn` moving `bytes`. */
export const timedMibps = async (bytes: number, fn: () => Promise<unknown>): Promise<number> =>
  mibps(bytes, await timed(fn));

/**
 * Runs every one of `sides` `runs` times, rotating which goes first, so that drift on a shared
 * machine (page cache, a neighbour's load, RGW garbage collection) falls on all of them alike.
 */
export async function interleaved<T>(runs: number, sides: (() => Promise<T>)[]): Promise<T[][]> {
  const out = sides.map(() => [] as T[]);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < sides.length; k++) {
      const side = (i + k) % sides.length;
      out[side]!.push(await sides[side]!());
    }
  }
  return out;
}

export async function sideBySide<T>(
  runs: number,
  a: () => Promise<T>,
  b: () => Promise<T>,
): Promise<{ a: T[]; b: T[] }> {
  const [ra, rb] = await interleaved(runs, [a, b]);
  return { a: ra!, b: rb! };
}
