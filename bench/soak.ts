/**
 * `npm run bench:soak`: do full garbage collections come back to a long-running gateway? The
 * gateway starts node with --initial-old-space-size=64 because, without it, many processes ran
 * full collections again and again while taking bodies
 * (docs/operations.md#memory-allocator-and-node-flags, docs/decisions/0006-node-initial-old-space-size.md).
 * This runs SOAK_PROCESSES built gateways (fs store, --trace-gc) for SOAK_MINUTES; in each cycle every
 * gateway takes one upload of SOAK_FILE_MIB (the bench's chunked multipart client), serves it twice
 * to curl and deletes it, then all idle SOAK_IDLE_SECONDS, when V8's memory reducer may run its own full collections. Each
 * cycle prints, per gateway, the full collections during its transfers and during the idle before
 * them, its RSS and its heap after the latest young-generation collection. Never part of `npm test`.
 *
 *   SOAK_MINUTES=45 SOAK_PROCESSES=2 SOAK_FILE_MIB=256 SOAK_IDLE_SECONDS=90 npm run bench:soak
 */
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { env } from './lib/env.js';
import { fullGcs, procStatusBytes, startGatewayProcess, type GatewayProcess } from './lib/gateway-process.js';
import { curlDownload, deleteFile, uploadFile } from './lib/http.js';
import { MiB } from './lib/stats.js';

const MINUTES = env.int('SOAK_MINUTES', 45);
const PROCESSES = env.int('SOAK_PROCESSES', 2);
const SIZE = env.mib('SOAK_FILE_MIB', 256);
const IDLE_SECONDS = env.int('SOAK_IDLE_SECONDS', 90, { min: 0 });

const log = (msg: string) => console.log(`[bench:soak ${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** The V8 heap in MB after the latest scavenge --trace-gc logged: live data plus old-space garbage. */
function heapAfterScavenge(gw: GatewayProcess): string {
  const lines = readFileSync(gw.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('Scavenge'));
  return /-> ([\d.]+) /.exec(lines.at(-1) ?? '')?.[1] ?? '?';
}

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'files-gateway-soak-'));
const gateways: GatewayProcess[] = [];
try {
  for (let i = 0; i < PROCESSES; i++) {
    const dataDir = path.join(tmp, `gw${i}`);
    gateways.push(
      await startGatewayProcess({
        env: { FILES_STORE: 'fs', FILES_DATA_DIR: dataDir, FILES_MAX_FILE_BYTES: String(SIZE) },
        logFile: path.join(tmp, `gw${i}.log`),
        nodeArgs: ['--trace-gc'],
      }),
    );
  }
  log(
    `${PROCESSES} gateways, ${MINUTES} min, cycles of ${SIZE / MiB} MiB up and twice down, then ${IDLE_SECONDS} s idle`,
  );
  const end = Date.now() + MINUTES * 60_000;
  const counted = gateways.map(() => 0);
  const transferGcs = gateways.map(() => [] as number[]);
  for (let cycle = 1; Date.now() < end; cycle++) {
    for (const [i, gw] of gateways.entries()) {
      const before = fullGcs(gw);
      const idle = before - counted[i]!;
      const id = await uploadFile(gw.url, SIZE);
      for (let d = 0; d < 2; d++) await curlDownload(`${gw.url}/v1/files/${id}/content`, SIZE);
      await deleteFile(gw.url, id);
      counted[i] = fullGcs(gw);
      transferGcs[i]!.push(counted[i]! - before);
      log(
        `cycle ${cycle} gw${i}: full collections ${counted[i]! - before} in its ${((3 * SIZE) / (1024 * MiB)).toFixed(2)} GiB, ${idle} in the idle before; ` +
          `RSS ${(procStatusBytes(gw.pid, 'VmRSS') / MiB).toFixed(0)} MiB, heap ${heapAfterScavenge(gw)} MB`,
      );
    }
    await sleep(IDLE_SECONDS * 1000);
  }
  for (const [i, gcs] of transferGcs.entries()) {
    log(
      `gw${i}: ${gcs.length} cycles; full collections during transfers ${gcs.reduce((a, b) => a + b, 0)} (cycles with any: ${gcs.filter((n) => n > 0).length}); ${fullGcs(gateways[i]!)} in all`,
    );
  }
} finally {
  await Promise.all(gateways.map((gw) => gw.stop()));
  await fs.rm(tmp, { recursive: true, force: true });
}
