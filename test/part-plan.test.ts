import { describe, expect, it } from 'vitest';
import { S3_LIMITS, S3_MAX_PARTS, planSegments, type Segment } from '../src/storage/part-assembly.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const parts = (...sizes: number[]) => sizes.map((bytes, i) => ({ id: `p${i}`, bytes }));
const bytesOf = (s: Segment) => (s.kind === 'copy' ? s.slice.end - s.slice.start : s.bytes);
const streamed = (segments: Segment[]) =>
  segments.filter((s) => s.kind === 'stream').reduce((n, s) => n + bytesOf(s), 0);

/** Every byte once, in order; every segment but the last within S3's limits. */
function expectValid(sizes: number[], segments: Segment[]) {
  const slices = segments.flatMap((s) => (s.kind === 'copy' ? [s.slice] : s.slices)).filter((s) => s.end > s.start);
  const flat = parts(...sizes).flatMap((p) => (p.bytes > 0 ? [{ partId: p.id, start: 0, end: p.bytes }] : []));
  // merge adjacent slices of one part, then compare with the parts themselves
  const merged = slices.reduce<typeof slices>((out, s) => {
    const last = out.at(-1);
    if (last && last.partId === s.partId && last.end === s.start) last.end = s.end;
    else out.push({ ...s });
    return out;
  }, []);
  expect(merged).toEqual(flat);
  for (const s of segments.slice(0, -1)) expect(bytesOf(s)).toBeGreaterThanOrEqual(S3_LIMITS.minPart);
  for (const s of segments) expect(bytesOf(s)).toBeLessThanOrEqual(S3_LIMITS.maxPart);
  expect(segments.length).toBeLessThanOrEqual(S3_MAX_PARTS);
}

describe('planSegments: S3 multipart from upload parts', () => {
  it('copies 64 MiB parts server-side, whatever their order', () => {
    const sizes = Array(16).fill(64 * MiB);
    const plan = planSegments(parts(...sizes));
    expectValid(sizes, plan);
    expect(plan.every((s) => s.kind === 'copy')).toBe(true);
    expect(streamed(plan)).toBe(0);
  });

  it('coalesces small parts into exactly 5 MiB runs, topping a run up from the next big part', () => {
    const sizes = [3 * MiB, 6 * MiB, 1024, 1024, 64 * MiB, 3 * MiB];
    const plan = planSegments(parts(...sizes));
    expectValid(sizes, plan);
    expect(plan.map((s) => [s.kind, bytesOf(s)])).toEqual([
      ['stream', 5 * MiB], // 3 MiB + the first 2 MiB of the 6 MiB part
      ['stream', 5 * MiB], // its last 4 MiB, two 1 KiB parts, then the head of the 64 MiB part
      ['copy', 64 * MiB - (MiB - 2048)],
      ['stream', 3 * MiB], // the last part may be small
    ]);
  });

  it('splits a stretch over 5 GiB into equal copies', () => {
    const plan = planSegments(parts(12 * GiB));
    expectValid([12 * GiB], plan);
    expect(plan.map(bytesOf)).toEqual([4 * GiB, 4 * GiB, 4 * GiB]);
  });

  it('makes a small file one stream and an empty file nothing', () => {
    expect(planSegments(parts(1024, 0, 2048)).map((s) => [s.kind, bytesOf(s)])).toEqual([['stream', 3072]]);
    expect(planSegments(parts(0))).toEqual([]);
    expect(planSegments([])).toEqual([]);
  });

  it('stays within 10,000 parts for 48 GiB of 1 MiB parts', () => {
    const sizes = Array(48 * 1024).fill(MiB);
    const plan = planSegments(parts(...sizes));
    expectValid(sizes, plan);
    expect(plan.length).toBe(Math.ceil((48 * GiB) / (5 * MiB)));
  });
});
