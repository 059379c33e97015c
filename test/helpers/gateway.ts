import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { compose } from '../../src/compose.js';
import { loadConfig, type ApiKey, type Config, type S3Config } from '../../src/config.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import type { FileService } from '../../src/files/file-service.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { GatewayMetrics } from '../../src/metrics.js';

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
   * gateway builds its S3 store from them (its calls counted in the metrics, as src/compose.ts does).
   */
  s3?: S3Config;
  maxFileBytes?: number;
  maxUploadBytes?: number;
  maxPartBytes?: number;
  now?: () => number;
  /** Reuse this data folder (and its catalog), as a restarted gateway would; close() then leaves it. */
  dataDir?: string;
  /** A keys file, as FILES_API_KEYS_FILE names it: read at start and re-read when it changes. */
  apiKeysFile?: string;
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

/**
 * The configuration a test gateway runs with: the defaults of config.ts for a data folder, on
 * loopback with a free port, and the options' values on top.
 */
export function gatewayConfig(dataDir: string, opts: GatewayOptions = {}): Config {
  const defaults = loadConfig({
    FILES_DATA_DIR: dataDir,
    ...(opts.apiKeysFile !== undefined && { FILES_API_KEYS_FILE: opts.apiKeysFile }),
  });
  return Object.freeze({
    ...defaults,
    host: '127.0.0.1',
    port: 0,
    ...(opts.s3 && { store: 's3' as const, s3: opts.s3 }),
    ...(opts.maxFileBytes !== undefined && { maxFileBytes: opts.maxFileBytes }),
    ...(opts.maxUploadBytes !== undefined && { maxUploadBytes: opts.maxUploadBytes }),
    ...(opts.maxPartBytes !== undefined && { maxPartBytes: opts.maxPartBytes }),
    ...(opts.apiKeys && { apiKeys: opts.apiKeys.map((k) => ({ ...k, service: k.service ?? false })) }),
  });
}

/** A gateway on a real socket (port 0 on loopback) with its own data folder and catalog. */
export async function startGateway(opts: GatewayOptions = {}): Promise<Gateway> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const config = gatewayConfig(dataDir, opts);
  const metrics = new GatewayMetrics({ version: 'test' });
  const given = opts.store;
  const gw = await compose(config, {
    metrics,
    log: opts.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    now: opts.now,
    store:
      given &&
      (() => {
        const store = given(dataDir, metrics);
        if (store.kind !== config.store) {
          throw new Error(
            `startGateway: a ${store.kind} store ${opts.s3 ? 'with' : 'without'} S3 settings: pass the settings of an S3 store in \`s3\``,
          );
        }
        return store;
      }),
    catalog: opts.catalog,
  });
  const { app, files, store, catalog } = gw;
  await app.listen({ host: config.host, port: config.port });
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
      await gw.close();
      if (!opts.dataDir) await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file under a folder, recursively (to prove nothing was left behind). */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}
