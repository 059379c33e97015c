/**
 * `npm run bench:compare -- <other dist/main.js>`: the metadata figures of this build and of another
 * one (an older commit built elsewhere), measured alternately on one catalog in one run, so a change's
 * before/after is a ratio of neighbours rather than of two runs on a drifting machine. Never part
 * of `npm test`.
 *
 *   git worktree add ../before <commit> && (cd ../before && npm ci && npm run build)
 *   npm run bench:compare -- ../before/dist/main.js
 *
 * Environment (all optional):
 *   COMPARE_ROUNDS=3         rounds; each starts both builds afresh and loads each route on both
 *   COMPARE_SECONDS=5        load duration of each measurement
 *   COMPARE_FILES=10000      files in the shared catalog (fs store, SQLite)
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startGatewayProcess } from './lib/gateway-process.js';
import { populate } from './lib/http.js';
import { requestsPerSecond } from './lib/load.js';
import { summarize } from './lib/stats.js';

const envInt = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
const ROUNDS = envInt('COMPARE_ROUNDS', 3);
const SECONDS = envInt('COMPARE_SECONDS', 5);
const FILES = envInt('COMPARE_FILES', 10_000);
const other = process.argv[2];
if (!other) throw new Error('usage: npm run bench:compare -- <path to the other build dist/main.js>');
await fs.access(other);
const builds = { this: path.join(ROOT, 'dist', 'main.js'), other: path.resolve(other) };

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'files-gateway-compare-'));
const env = { FILES_DATA_DIR: tmp, FILES_STORE: 'fs' };
const start = (main: string) => startGatewayProcess({ env, logFile: path.join(tmp, 'gateway.log'), main });
const rps: Record<string, number[]> = {};
try {
  const seed = await start(builds.this);
  const ids = await populate(seed.url, FILES);
  await seed.stop();
  const routes = { 'retrieve by id': `/v1/files/${ids[Math.floor(ids.length / 2)]}`, 'list page of 100': '/v1/files?limit=100' };
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which build goes first, so drift falls on both alike.
    const order = round % 2 === 0 ? (['this', 'other'] as const) : (['other', 'this'] as const);
    for (const build of order) {
      const gw = await start(builds[build]);
      try {
        await requestsPerSecond(`${gw.url}${routes['list page of 100']}`, 2); // warm-up
        for (const [what, route] of Object.entries(routes)) (rps[`${what}|${build}`] ??= []).push(await requestsPerSecond(`${gw.url}${route}`, SECONDS));
      } finally {
        await gw.stop();
      }
    }
    process.stderr.write(`[bench:compare] round ${round + 1} of ${ROUNDS} done\n`);
  }
} finally {
  await fs.rm(tmp, { recursive: true, force: true });
}

const lines = ['| request | this build req/s (min / median / max) | other build req/s | this / other |', '| --- | --- | --- | ---: |'];
for (const what of ['retrieve by id', 'list page of 100']) {
  const [a, b] = [summarize(rps[`${what}|this`]!), summarize(rps[`${what}|other`]!)];
  const fmt = (s: typeof a) => `${s.min.toFixed(0)} / ${s.median.toFixed(0)} / ${s.max.toFixed(0)}`;
  lines.push(`| ${what} | ${fmt(a)} | ${fmt(b)} | ${(a.median / b.median).toFixed(2)} |`);
}
process.stdout.write(`\n${lines.join('\n')}\n\n${FILES} files, ${ROUNDS} rounds of ${SECONDS} s, autocannon 32 connections; ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}\n`);
