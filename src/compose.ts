/**
 * The composition root: configuration -> store -> catalog -> FileService -> app. It is the one
 * place that picks the port implementations and wires metrics and logging into them; `serve`,
 * every CLI command and the tests' gateway build the gateway through it. Nothing in api/, files/,
 * storage/ or catalog/ imports this module.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { watchApiKeysFile } from './api/api-keys-file.js';
import { ApiKeyRing } from './api/auth.js';
import { buildApp } from './app.js';
import { publicSettings, type Config } from './config.js';
import type { Catalog } from './catalog/catalog.js';
import { SqliteCatalog } from './catalog/sqlite-catalog.js';
import { FileService } from './files/file-service.js';
import { BufferedLogDestination, openLogger } from './log.js';
import { GatewayMetrics, instrumentCatalog } from './metrics.js';
import type { BlobStore } from './storage/blob-store.js';
import { FsBlobStore } from './storage/fs-store.js';
import { VERSION } from './version.js';
import type { GatewayInfo } from './api/info-routes.js';

export interface Ports {
  store: BlobStore;
  catalog: Catalog;
}

export interface PortOptions {
  /** Counts the store's calls and the catalog's queries; none: the ports are not instrumented. */
  metrics?: GatewayMetrics;
  /**
   * A store or catalog built elsewhere instead of the configured one (tests: a store with its own
   * key prefix, a catalog with a small pool). It is opened, instrumented and closed like the
   * configured one.
   */
  store?: () => BlobStore | Promise<BlobStore>;
  catalog?: () => Catalog | Promise<Catalog>;
}

/** The store the configuration names, not yet initialised. The S3 SDK is loaded only when used. */
export async function openStore(config: Config, metrics?: GatewayMetrics): Promise<BlobStore> {
  if (config.store === 's3') {
    const { S3BlobStore } = await import('./storage/s3-store.js');
    return new S3BlobStore(config.s3!, { observeCall: metrics?.observeStoreCall });
  }
  return new FsBlobStore(config.dataDir);
}

/** The catalog the configuration names, not yet initialised. The PostgreSQL driver is loaded only when used. */
export async function openCatalog(config: Config): Promise<Catalog> {
  if (config.catalog.type === 'postgres') {
    const { PostgresCatalog } = await import('./catalog/postgres-catalog.js');
    return new PostgresCatalog({ url: config.catalog.url, poolSize: config.catalog.poolSize });
  }
  return new SqliteCatalog(config.catalog.path);
}

/** Closes the catalog, then the store, even when closing the catalog fails. */
async function closePorts({ store, catalog }: Ports): Promise<void> {
  try {
    await catalog.close();
  } finally {
    await store.close();
  }
}

/** Opens and initialises both ports; if either fails, what was opened is closed again. */
async function openPorts(config: Config, opts: PortOptions): Promise<Ports> {
  const store = await (opts.store?.() ?? openStore(config, opts.metrics));
  let catalog: Catalog | undefined;
  try {
    const opened = await (opts.catalog?.() ?? openCatalog(config));
    catalog = opts.metrics ? instrumentCatalog(opened, opts.metrics) : opened;
    await store.init();
    await catalog.init();
    return { store, catalog };
  } catch (err) {
    // The error that stopped the opening is the one worth reporting, not a failure to close after it.
    await (catalog ? closePorts({ store, catalog }) : store.close()).catch(() => undefined);
    throw err;
  }
}

/**
 * Runs `fn` with the configured store and catalog, opened and initialised, and closes both when it
 * is done, whether it resolves or throws.
 */
export async function withPorts<T>(
  config: Config,
  fn: (ports: Ports) => Promise<T>,
  opts: PortOptions = {},
): Promise<T> {
  const ports = await openPorts(config, opts);
  try {
    return await fn(ports);
  } finally {
    await closePorts(ports);
  }
}

/** The Files domain over the two ports, with the limits of the configuration. */
export function fileService(config: Config, ports: Ports, opts: { log: Logger; now?: () => number }): FileService {
  return new FileService({
    store: ports.store,
    catalog: ports.catalog,
    maxFileBytes: config.maxFileBytes,
    maxUploadBytes: config.maxUploadBytes,
    maxPartBytes: config.maxPartBytes,
    downloadUrlTtlSeconds: config.downloads.redirect === 'presigned' ? config.downloads.urlTtlSeconds : undefined,
    log: opts.log,
    now: opts.now,
  });
}

/** What GET /v1/files-gateway/info reports: the version and the public part of the configuration. */
export function gatewayInfo(config: Config): GatewayInfo {
  return { version: VERSION, ...publicSettings(config) };
}

export interface ComposeOptions extends PortOptions {
  /** Defaults to a fresh registry for this version. */
  metrics?: GatewayMetrics;
  /** Defaults to the configured logger, writing through a buffer whose dropped lines are counted in the metrics. */
  log?: Logger;
  /** Milliseconds since the epoch (tests: expiry without waiting). */
  now?: () => number;
}

/** A composed gateway, not yet listening. */
export interface Composition extends Ports {
  config: Config;
  app: FastifyInstance;
  files: FileService;
  metrics: GatewayMetrics;
  log: Logger;
  /**
   * Stops in order: the keys file's watcher, the app (no new connections; requests in flight get config.shutdownTimeoutMs,
   * then their connections are cut), the FileService's sweeper and work in progress, the catalog,
   * the store.
   */
  close(): Promise<void>;
}

/** Builds the whole gateway from a configuration: the ports (opened and initialised), the FileService and the app. */
export async function compose(config: Config, opts: ComposeOptions = {}): Promise<Composition> {
  const metrics = opts.metrics ?? new GatewayMetrics({ version: VERSION });
  const log =
    opts.log ??
    openLogger(config, new BufferedLogDestination({ onDrop: (lines) => metrics.logLinesDropped.inc(lines) }));
  const ports = await openPorts(config, { ...opts, metrics });
  const { store, catalog } = ports;
  try {
    metrics.watchStored(() => catalog.stats());
    const files = fileService(config, ports, { log, now: opts.now });
    const apiKeys = new ApiKeyRing(config.apiKeys);
    const app = await buildApp({
      files,
      logger: log,
      metrics,
      limits: config.limits,
      apiKeys,
      info: gatewayInfo(config),
    });
    // A mounted Secret changes in place: its keys take effect without a restart.
    const keysFile =
      config.apiKeysFile === undefined
        ? undefined
        : watchApiKeysFile({
            file: config.apiKeysFile,
            fromEnv: config.envApiKeys,
            ring: apiKeys,
            log,
            onReload: (outcome) => metrics.apiKeysReloads.inc({ outcome }),
          });
    const close = async () => {
      await keysFile?.close();
      const force = setTimeout(() => {
        log.warn('shutdown timeout reached: closing remaining connections');
        app.server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      force.unref();
      await app.close();
      clearTimeout(force);
      try {
        await files.stop();
      } finally {
        await closePorts(ports);
      }
    };
    return { config, app, files, store, catalog, metrics, log, close };
  } catch (err) {
    await closePorts(ports).catch(() => undefined);
    throw err;
  }
}
