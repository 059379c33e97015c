import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import { publicSettings, type ApiKey, type S3Config } from '../../src/config.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { FileService } from '../../src/files/file-service.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { GatewayMetrics, instrumentCatalog } from '../../src/metrics.js';
import { VERSION } from '../../src/version.js';

export interface Gateway {
  /** http://127.0.0.1:PORT */
  url: string;
  app: FastifyInstance;
  files: FileService;
  metrics: GatewayMetrics;
  store: BlobStore;
  catalog: Catalog;
  dataDir: string;
  close(): Promise<void>;
}

export interface GatewayOptions {
  /**
   * Defaults to an fs store in the gateway's temp data folder, or to an S3 store built from `s3`;
   * `metrics` is the gateway's own. An S3 store needs its settings in `s3` too.
   */
  store?: (dataDir: string, metrics: GatewayMetrics) => BlobStore;
  /**
   * The S3 settings of the store, which GET /v1/files-gateway/info reports; without `store`, the
   * gateway builds its S3 store from them (its calls counted in the metrics, as main.ts does).
   */
  s3?: S3Config;
  maxFileBytes?: number;
  maxUploadBytes?: number;
  maxPartBytes?: number;
  now?: () => number;
  /** Reuse this data folder (and its catalog), as a restarted gateway would; close() then leaves it. */
  dataDir?: string;
  /** Bearer keys (none: open, the default tenant); `service` defaults to false. */
  apiKeys?: (Omit<ApiKey, 'service'> & { service?: boolean })[];
  /** Defaults to a silent logger (TEST_LOG_LEVEL raises it). */
  log?: Logger;
  /** Defaults to SQLite in the data folder; the gateway closes it. */
  catalog?: () => Catalog;
}

export async function tempDir(prefix = 'files-gateway-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A gateway on a real socket (port 0 on loopback) with its own data folder and catalog. */
export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const log = opts.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const metrics = new GatewayMetrics({ version: 'test' });
  const store = opts.store
    ? opts.store(dataDir, metrics)
    : opts.s3
      ? new (await import('../../src/storage/s3-store.js')).S3BlobStore(opts.s3, { observeCall: metrics.observeStoreCall })
      : new FsBlobStore(dataDir);
  if (store.kind !== (opts.s3 ? 's3' : 'fs')) {
    throw new Error(`startGateway: a ${store.kind} store ${opts.s3 ? 'with' : 'without'} S3 settings: pass the settings of an S3 store in \`s3\``);
  }
  const maxFileBytes = opts.maxFileBytes ?? 512 * 1024 * 1024;
  const catalog = instrumentCatalog(opts.catalog?.() ?? new SqliteCatalog(path.join(dataDir, 'catalog.sqlite')), metrics);
  await store.init();
  await catalog.init();
  metrics.watchStored(() => catalog.stats());
  const files = new FileService({
    store,
    catalog,
    maxFileBytes,
    maxUploadBytes: opts.maxUploadBytes,
    maxPartBytes: opts.maxPartBytes,
    log,
    now: opts.now,
  });
  const app = await buildApp({
    files,
    logger: log,
    metrics,
    apiKeys: opts.apiKeys?.map((k) => ({ ...k, service: k.service ?? false })),
    info: { version: VERSION, ...publicSettings({ store: opts.s3 ? 's3' : 'fs', s3: opts.s3, maxFileBytes }) },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    files,
    metrics,
    store,
    catalog,
    dataDir,
    async close() {
      await app.close();
      await files.stop();
      await catalog.close();
      await store.close();
      if (!opts.dataDir) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file under a folder, recursively (to prove nothing was left behind). */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}
