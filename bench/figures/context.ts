import { mkdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startGatewayProcess, type GatewayProcess } from '../lib/gateway-process.js';
import { deleteFile, downloadDiscard, uploadFile } from '../lib/http.js';
import { startMinimalRelay, type ChildServer } from '../lib/load.js';
import { summarizeProfiles, type ProfileLine } from '../lib/profile.js';
import { openS3Target, type S3Target } from '../lib/s3.js';
import { MiB } from '../lib/stats.js';
import { log } from './figure.js';
import type { RunOptions } from './options.js';
import { onFresh } from './fresh.js';
import { deleteObject, directUpload } from './transfers.js';
import { runTempDir } from '../lib/tmp.js';

/**
 * Servers that several figures share, started by the first figure that asks for one and released
 * by the driver once no later figure uses it: `s3` is the S3 server and the run's bucket,
 * `s3-gateway` the gateway on that bucket that the upload, download and concurrent figures share,
 * `relay` the minimal relay (bench/lib/minimal-relay.ts) on the same bucket, their baseline.
 */
export type Fixture = 's3' | 's3-gateway' | 'relay';

export interface S3Bucket {
  target: S3Target;
  bucket: string;
}

/** The gateway the upload, download and concurrent figures share, warmed up. */
export interface S3Gateway extends S3Bucket {
  gw: GatewayProcess;
  /** The file the upload runs left behind, which the download figures read. */
  kept: string | undefined;
  /** Deletes the kept file and has RGW reclaim what the figures so far deleted (once; later calls do nothing). */
  settle(): Promise<void>;
}

export interface ProfileSummary {
  self: ProfileLine[];
  gatewayTotal: ProfileLine[];
}

function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : os.freemem();
}

/**
 * What one `npm run bench` shares between its figures: the options, the temporary folder, the
 * gateways it has started (all stopped by close()), the shared servers, and the CPU profiles of
 * stopped gateways (BENCH_CPU_PROF=1). The driver creates one and passes it to every figure.
 */
export class BenchContext {
  /** Names the results file and the profiles' folder. */
  readonly stamp = new Date().toISOString().replace(/[:.]/g, '-');
  readonly resultsDir = path.join(ROOT, 'bench', 'results');
  /** Each profiled gateway's summary, keyed `<n>-<label>`, filled as they stop. */
  readonly profiles: Record<string, ProfileSummary> = {};
  private readonly running = new Set<GatewayProcess>();
  private gatewayCount = 0;
  private s3Target: S3Target | undefined;
  private s3Bucket: S3Bucket | undefined;
  private s3Shared: S3Gateway | undefined;
  private relayServer: ChildServer | undefined;

  private constructor(
    readonly options: RunOptions,
    /** The run's temporary folder, removed by close(). */
    readonly tmp: string,
  ) {}

  static async create(options: RunOptions): Promise<BenchContext> {
    return new BenchContext(options, await runTempDir('files-gateway-bench-'));
  }

  /** Which S3 server the figures ran on, once one was opened. */
  get s3Kind(): S3Target['kind'] | undefined {
    return this.s3Target?.kind;
  }

  /** A gateway child on `env`, with its own data folder unless given one; profiled when BENCH_CPU_PROF=1. */
  async gateway(label: string, env: Record<string, string>, sharedDataDir?: string): Promise<GatewayProcess> {
    const { size, big, partSize, queueSize, cpuProf, payloadSigning } = this.options;
    const n = ++this.gatewayCount;
    const dataDir = sharedDataDir ?? path.join(this.tmp, `gateway-${n}-${label}`);
    mkdirSync(dataDir, { recursive: true });
    const profDir = path.join(this.resultsDir, `${this.stamp}-prof`, `${n}-${label}`);
    const child = await startGatewayProcess({
      env: {
        FILES_DATA_DIR: dataDir,
        FILES_MAX_FILE_BYTES: String(Math.max(size, big) + MiB),
        FILES_S3_PART_SIZE: String(partSize),
        FILES_S3_QUEUE_SIZE: String(queueSize),
        // the gateway's side only: the direct side and the relay sign every part over plain HTTP
        ...(payloadSigning && { FILES_S3_PAYLOAD_SIGNING: payloadSigning }),
        ...env,
      },
      logFile: path.join(this.tmp, `gateway-${n}-${label}.log`),
      nodeArgs: cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
    });
    this.running.add(child);
    const stop = child.stop;
    child.stop = async () => {
      this.running.delete(child);
      await stop();
      if (cpuProf) this.profiles[`${n}-${label}`] = summarizeProfiles(profDir);
    };
    return child;
  }

  /** The fs figures' and metadata figures' gateway: a fresh process each call, on one data folder. */
  fsGateway(): Promise<GatewayProcess> {
    return this.gateway('fs', { FILES_STORE: 'fs' }, path.join(this.tmp, 'gateway-fs'));
  }

  /** The S3 server (BENCH_S3_ENDPOINT or a private Ceph RGW) and a bucket for this run. */
  async s3(): Promise<S3Bucket> {
    if (this.s3Bucket) return this.s3Bucket;
    const { size, big, concurrent, concurrentSize, s3Endpoint } = this.options;
    // memstore keeps objects in RAM: at most two `size` objects or one `big` one at a time, plus slack
    const needGiB = Math.ceil(Math.max(2 * size, big, concurrent * concurrentSize) / (1024 * MiB)) + 2;
    const free = memAvailable() / (1024 * MiB);
    if (!s3Endpoint && free < needGiB + 4) {
      throw new Error(
        `${free.toFixed(1)} GiB available; the RGW memstore needs ${needGiB} GiB plus room for the processes: lower BENCH_BIG_MIB / BENCH_SIZE_MIB`,
      );
    }
    log(`S3: ${s3Endpoint ?? `starting a private Ceph RGW (memstore ${needGiB} GiB)`}`);
    this.s3Target = await openS3Target(this.tmp, needGiB);
    const bucket = `bench-${Date.now().toString(36)}`;
    await this.s3Target.createBucket(bucket);
    this.s3Bucket = { target: this.s3Target, bucket };
    return this.s3Bucket;
  }

  /** The gateway the upload, download and concurrent figures share, started and warmed up on first use. */
  async s3Gateway(): Promise<S3Gateway> {
    if (this.s3Shared) return this.s3Shared;
    const s3 = await this.s3();
    const gw = await this.gateway('s3', s3.target.gatewayEnv(s3.bucket));
    // warm-up: JIT, keep-alive sockets and RGW's first multipart upload, on both sides
    await deleteFile(gw.url, await uploadFile(gw.url, 16 * MiB));
    await directUpload(s3, 'warm-up', 16 * MiB, this.options);
    await deleteObject(s3, 'warm-up');
    let settled = false;
    const shared: S3Gateway = {
      ...s3,
      gw,
      kept: undefined,
      async settle() {
        if (settled) return;
        settled = true;
        if (shared.kept) await deleteFile(gw.url, shared.kept);
        shared.kept = undefined;
        await s3.target.collectGarbage();
      },
    };
    this.s3Shared = shared;
    return shared;
  }

  /** The minimal relay on the run's bucket, started and warmed up on first use. */
  async relay(): Promise<ChildServer> {
    if (this.relayServer) return this.relayServer;
    const { target, bucket } = await this.s3();
    const { endpoint, region, accessKeyId, secretAccessKey } = target;
    const relay = await startMinimalRelay({ endpoint, region, accessKeyId, secretAccessKey, bucket });
    this.relayServer = relay;
    // warm-up, both ways: JIT, keep-alive sockets, and the SDK's modules that load on a first request
    const id = await uploadFile(relay.url, 16 * MiB);
    await downloadDiscard(`${relay.url}/v1/files/${id}/content`, 16 * MiB);
    await deleteObject({ target, bucket }, id);
    return relay;
  }

  /**
   * `measure` on a fresh gateway on a bucket of its own (with `env` on top of the bench's): the
   * gateway stops after, and the bucket goes with every object the figure left in it, reclaimed by RGW.
   */
  async onOwnBucket<T>(
    label: string,
    measure: (gw: GatewayProcess, s3: S3Bucket) => Promise<T>,
    env: Record<string, string> = {},
  ): Promise<T> {
    const { target, bucket: runBucket } = await this.s3();
    const bucket = `${runBucket}-${label}`;
    await target.createBucket(bucket);
    try {
      return await onFresh(
        () => this.gateway(label, { ...target.gatewayEnv(bucket), ...env }),
        (gw) => measure(gw, { target, bucket }),
      );
    } finally {
      await target.removeBucket(bucket);
      await target.collectGarbage();
    }
  }

  /** Releases the shared servers that are not in `keep`: the figures that remain do not use them. */
  async release(keep: ReadonlySet<Fixture>): Promise<void> {
    if (this.relayServer && !keep.has('relay')) {
      const relay = this.relayServer;
      this.relayServer = undefined;
      await relay.stop();
    }
    if (this.s3Shared && !keep.has('s3-gateway')) {
      const { gw } = this.s3Shared;
      try {
        await this.s3Shared.settle();
      } finally {
        this.s3Shared = undefined;
        await gw.stop();
      }
    }
    if (this.s3Bucket && !keep.has('s3')) {
      const { target, bucket } = this.s3Bucket;
      this.s3Bucket = undefined;
      await target.removeBucket(bucket);
    }
  }

  /** Stops every gateway still running, removes the bucket if a figure failed before its release, stops RGW, removes the temporary folder. */
  async close(): Promise<void> {
    try {
      for (const gw of this.running) await gw.stop().catch(() => undefined);
      await this.relayServer?.stop().catch(() => undefined);
      if (this.s3Bucket)
        await this.s3Bucket.target
          .removeBucket(this.s3Bucket.bucket)
          .catch((err: unknown) => log(`removing the bucket: ${String(err)}`));
      await this.s3Target?.stop().catch((err: unknown) => log(`stopping RGW: ${String(err)}`));
    } finally {
      await fs.rm(this.tmp, { recursive: true, force: true });
    }
  }
}
