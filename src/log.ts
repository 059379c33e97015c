import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

/** The longest a line waits in the server's log buffer when traffic is light. */
const FLUSH_INTERVAL_MS = 250;
/** Under load, lines leave in writes of about this size rather than one write(2) per request. */
const WRITE_BYTES = 8 * 1024;
/** What may wait for a stdout that does not drain; beyond it lines are dropped and counted. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export function openLogger(config: Pick<Config, 'logLevel'>, destination?: DestinationStream): Logger {
  const options = { level: config.logLevel, redact: ['req.headers.authorization'] };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * The server's log output. A synchronous write(2) per request line cost a metadata request a
 * quarter of its time where system calls are expensive (see README, Performance), so the server
 * buffers: lines go out once WRITE_BYTES are waiting or FLUSH_INTERVAL_MS have passed, and what
 * is left on exit (pino flushes async destinations then). A stdout that stops draining makes the
 * server drop lines past `maxBufferedBytes` rather than stall every request behind it.
 * Commands that print progress keep pino's synchronous stdout, so lines stay in order with it.
 */
export function bufferedLogDestination(opts: { fd?: number; maxBufferedBytes?: number; onDrop?: () => void } = {}): ReturnType<typeof pino.destination> {
  const destination = pino.destination({
    dest: opts.fd ?? 1,
    sync: false,
    minLength: WRITE_BYTES,
    periodicFlush: FLUSH_INTERVAL_MS,
    maxLength: opts.maxBufferedBytes ?? MAX_BUFFERED_BYTES,
  });
  if (opts.onDrop) destination.on('drop', opts.onDrop);
  return destination;
}
