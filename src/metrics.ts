import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Catalog } from './catalog/catalog.js';

export type UploadOutcome = 'completed' | 'aborted' | 'too_large' | 'too_slow' | 'invalid' | 'error';
export type StoreCallObserver = (operation: string, outcome: string, seconds: number) => void;

/** Long uploads and downloads: buckets reach ten minutes. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const BACKEND_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * One Registry per app instance (tests run several gateways in one process). Label values are
 * bounded: routes are patterns, operations are SDK command or port method names.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route pattern, method and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'http_requests_in_flight',
    help: 'HTTP requests being served right now.',
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'files_gateway_upload_bytes_received_total',
    help: 'File bytes received in uploads, including uploads that later failed.',
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'files_gateway_download_bytes_sent_total',
    help: 'File bytes sent in downloads.',
    registers: [this.registry],
  });
  readonly downloadRedirects = new Counter({
    name: 'files_gateway_download_redirects_total',
    help: 'Downloads answered with a redirect to a presigned URL (FILES_DOWNLOAD_REDIRECT=presigned): their bytes skip the gateway.',
    registers: [this.registry],
  });
  readonly uploads = new Counter({
    name: 'files_gateway_uploads_total',
    help: 'File uploads by outcome: completed, aborted (client went away), too_large, too_slow (cut below the minimum upload rate), invalid (bad form), error.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly storeCalls = new Histogram({
    name: 'files_gateway_store_call_duration_seconds',
    help: 'Object store calls (S3 API operations; every multipart part counts) by operation and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: BACKEND_BUCKETS,
    registers: [this.registry],
  });
  readonly catalogQueries = new Histogram({
    name: 'files_gateway_catalog_query_duration_seconds',
    help: 'Catalog operations by method and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: BACKEND_BUCKETS,
    registers: [this.registry],
  });
  readonly logLinesDropped = new Counter({
    name: 'files_gateway_log_lines_dropped_total',
    help: 'Log lines dropped because stdout did not drain and the log buffer was full, or stdout failed.',
    registers: [this.registry],
  });

  readonly apiKeysReloads = new Counter({
    name: 'files_gateway_api_keys_reloads_total',
    help: 'Re-reads of a changed API keys file (FILES_API_KEYS_FILE) by outcome: success, error (the old keys stay in force).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor(opts: { version: string }) {
    collectDefaultMetrics({ register: this.registry });
    // Both outcomes are exported from the start, so a rate over them never lacks a series.
    for (const outcome of ['success', 'error']) this.apiKeysReloads.inc({ outcome }, 0);
    new Gauge({
      name: 'files_gateway_build_info',
      help: 'Always 1; the version label says which build is running.',
      labelNames: ['version'] as const,
      registers: [this.registry],
    }).set({ version: opts.version }, 1);
  }

  /** Stored files and bytes, read at scrape time from totals the catalog keeps: no scan per scrape. */
  watchStored(stats: () => Promise<{ files: number; bytes: number }>): void {
    new Gauge({
      name: 'files_gateway_files_stored',
      help: 'Files in the catalog.',
      registers: [this.registry],
      async collect() {
        this.set((await stats()).files);
      },
    });
    new Gauge({
      name: 'files_gateway_bytes_stored',
      help: 'Total size of the files in the catalog.',
      registers: [this.registry],
      async collect() {
        this.set((await stats()).bytes);
      },
    });
  }

  readonly observeStoreCall: StoreCallObserver = (operation, outcome, seconds) => {
    this.storeCalls.observe({ operation, outcome }, seconds);
  };
}

/** The catalog with every method timed into `metrics`; same contract, same errors. */
export function instrumentCatalog<C extends Catalog>(catalog: C, metrics: GatewayMetrics): C {
  return new Proxy(catalog, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      return async (...args: unknown[]) => {
        const start = performance.now();
        let outcome = 'success';
        try {
          return await value.apply(target, args);
        } catch (err) {
          outcome = 'error';
          throw err;
        } finally {
          metrics.catalogQueries.observe({ operation: prop, outcome }, (performance.now() - start) / 1000);
        }
      };
    },
  });
}
