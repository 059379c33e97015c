import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApp } from '../../src/app.js';
import type { ApiKey } from '../../src/config.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { SqliteCatalog } from '../../src/catalog/sqlite-catalog.js';
import { FileService } from '../../src/files/file-service.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { FsBlobStore } from '../../src/storage/fs-store.js';
import { GatewayMetrics, instrumentCatalog } from '../../src/metrics.js';

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
  /** Defaults to an fs store in the gateway's temp data folder; `metrics` is the gateway's own. */
  store?: (dataDir: string, metrics: GatewayMetrics) => BlobStore;
  maxFileBytes?: number;
  maxUploadBytes?: number;
  maxPartBytes?: number;
  now?: () => number;
  /** Reuse this data folder (and its catalog), as a restarted gateway would; close() then leaves it. */
  dataDir?: string;
  /** Bearer keys (none: open, the default tenant). */
  apiKeys?: ApiKey[];
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
  const store = opts.store ? opts.store(dataDir, metrics) : new FsBlobStore(dataDir);
  const catalog = instrumentCatalog(opts.catalog?.() ?? new SqliteCatalog(path.join(dataDir, 'catalog.sqlite')), metrics);
  await store.init();
  await catalog.init();
  metrics.watchStored(() => catalog.stats());
  const files = new FileService({
    store,
    catalog,
    maxFileBytes: opts.maxFileBytes ?? 512 * 1024 * 1024,
    maxUploadBytes: opts.maxUploadBytes,
    maxPartBytes: opts.maxPartBytes,
    log,
    now: opts.now,
  });
  const app = await buildApp({ files, logger: log, metrics, apiKeys: opts.apiKeys });
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
