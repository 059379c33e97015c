#!/usr/bin/env node
import { pino, type Logger } from 'pino';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import type { BlobStore } from './storage/blob-store.js';
import { FsBlobStore } from './storage/fs-store.js';
import { SqliteCatalog } from './catalog/sqlite-catalog.js';
import { FileService } from './files/file-service.js';
import { reindex } from './files/reindex.js';
import { GatewayMetrics, instrumentCatalog } from './metrics.js';
import { VERSION } from './version.js';
import type { Catalog } from './catalog/catalog.js';

const USAGE = `Usage: files-gateway [serve | reindex]

OpenAI-compatible Files API gateway. Configuration comes from the environment (see README).

Commands:
  serve      run the HTTP server (default)
  reindex    rebuild the catalog from the metadata stored with every blob (bucket or folder);
             safe to run again, prints progress
`;

async function openStore(config: Config, metrics?: GatewayMetrics): Promise<BlobStore> {
  if (config.store === 's3') {
    const { S3BlobStore } = await import('./storage/s3-store.js');
    return new S3BlobStore(config.s3!, { observeCall: metrics?.observeStoreCall });
  }
  return new FsBlobStore(config.dataDir);
}

async function openPorts(config: Config, metrics?: GatewayMetrics): Promise<{ store: BlobStore; catalog: Catalog }> {
  const store = await openStore(config, metrics);
  const sqlite = new SqliteCatalog(config.catalogPath);
  const catalog = metrics ? instrumentCatalog(sqlite, metrics) : sqlite;
  await store.init();
  await catalog.init();
  return { store, catalog };
}

async function runReindex(config: Config): Promise<number> {
  const { store, catalog } = await openPorts(config);
  try {
    process.stdout.write(`reindex: reading ${store.kind} store at ${store.location} into ${catalog.kind} catalog at ${catalog.location}\n`);
    const restored = await reindex(store, catalog, (n) => process.stdout.write(`reindex: ${n} files restored\n`));
    process.stdout.write(`reindex: done, ${restored} files in the catalog from the store\n`);
    return 0;
  } finally {
    await catalog.close();
    await store.close();
  }
}

async function serve(config: Config, log: Logger): Promise<void> {
  const metrics = new GatewayMetrics({ version: VERSION });
  const { store, catalog } = await openPorts(config, metrics);
  metrics.watchStored(() => catalog.stats());
  const files = new FileService({ store, catalog, maxFileBytes: config.maxFileBytes, log });
  const app = await buildApp({ files, logger: log, metrics });
  const address = await app.listen({ host: config.host, port: config.port });
  log.info(
    { store: store.kind, storeLocation: store.location, catalog: catalog.kind, catalogLocation: catalog.location, address },
    `files-gateway ${VERSION} listening on ${address} (store ${store.kind} at ${store.location}, catalog ${catalog.kind} at ${catalog.location})`,
  );
  files.startSweeper(config.sweepIntervalMs);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, waiting for requests in flight');
    // In-flight requests get shutdownTimeoutMs to finish; after that their connections are cut.
    const force = setTimeout(() => {
      log.warn('shutdown timeout reached: closing remaining connections');
      app.server.closeAllConnections();
    }, config.shutdownTimeoutMs);
    force.unref();
    await app.close();
    clearTimeout(force);
    await files.stop();
    await catalog.close();
    await store.close();
    log.info('stopped');
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help' || rest.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`files-gateway: invalid configuration: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = pino({ level: config.logLevel, redact: ['req.headers.authorization'] });
  switch (command) {
    case 'serve':
      await serve(config, log);
      return -1; // keeps running until a signal
    case 'reindex':
      return runReindex(config);
    default:
      process.stderr.write(`files-gateway: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`files-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
