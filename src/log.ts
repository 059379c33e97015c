import fs from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

/** The longest a line waits in the server's log buffer when traffic is light. */
const FLUSH_INTERVAL_MS = 250;
/** Under load, lines leave in writes of about this size rather than one write(2) per request. */
const WRITE_BYTES = 64 * 1024;
/** How long a write that found a non-blocking stdout full waits before it tries again. */
const RETRY_MS = 100;
/** What may wait for a stdout that does not drain; beyond it lines are dropped and counted. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export function openLogger(config: Pick<Config, 'logLevel'>, destination?: DestinationStream): Logger {
  const options = { level: config.logLevel, redact: ['req.headers.authorization'] };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * The server's log output. A synchronous write(2) per request line cost a metadata request much
 * of its time where system calls are expensive (docs/decisions/0011-buffered-log-destination.md),
 * so the server buffers: lines go out in one write once WRITE_BYTES are waiting or
 * FLUSH_INTERVAL_MS have passed, and what is left when the process exits. A stdout that stops draining makes the server
 * drop lines past `maxBufferedBytes` (counted through `onDrop`) rather than stall every request
 * behind it. Commands that print progress keep pino's synchronous stdout, so lines stay in order
 * with it.
 *
 * Not pino.destination (sonic-boom), which measures its whole pending text on every line (a
 * growing string, flattened each time) and writes at most 16 KiB at a time; every write is a trip
 * to libuv's thread pool and back, which cost more here than the write itself.
 */
export class BufferedLogDestination implements DestinationStream {
  private readonly fd: number;
  private readonly maxBufferedBytes: number;
  private readonly onDrop: (lines: number) => void;
  private lines: string[] = [];
  private waitingBytes = 0;
  /** Taken from `lines` and not yet all written; `inFlight` while fs.write has it. */
  private writing: Buffer | undefined;
  private inFlight = false;
  private readonly timer: NodeJS.Timeout;
  private readonly flushOnExit = () => this.flushSync();

  constructor(opts: { fd?: number; maxBufferedBytes?: number; onDrop?: (lines: number) => void } = {}) {
    this.fd = opts.fd ?? 1;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.onDrop = opts.onDrop ?? (() => undefined);
    this.timer = setInterval(() => this.startWrite(), FLUSH_INTERVAL_MS).unref();
    process.on('exit', this.flushOnExit);
  }

  write(line: string): boolean {
    const bytes = Buffer.byteLength(line);
    if (this.waitingBytes + (this.writing?.length ?? 0) + bytes > this.maxBufferedBytes) {
      this.onDrop(1);
      return false;
    }
    this.lines.push(line);
    this.waitingBytes += bytes;
    if (this.waitingBytes >= WRITE_BYTES) this.startWrite();
    return true;
  }

  /** Writes what is left, synchronously (the process is exiting); gives up on a stdout that is full. */
  flushSync(): void {
    // An fs.write still running at exit (only when exit is forced) may or may not land: leave it.
    const pending = [...(this.writing && !this.inFlight ? [this.writing] : []), Buffer.from(this.lines.join(''))];
    this.writing = undefined;
    this.lines = [];
    this.waitingBytes = 0;
    for (let chunk of pending) {
      try {
        while (chunk.length > 0) chunk = chunk.subarray(fs.writeSync(this.fd, chunk));
      } catch {
        this.onDrop(countLines(chunk));
      }
    }
  }

  /** Stops the timer and the flush on exit; the fd stays open (it is the caller's). */
  stop(): void {
    clearInterval(this.timer);
    process.off('exit', this.flushOnExit);
  }

  private startWrite(): void {
    if (this.writing || this.lines.length === 0) return;
    this.writing = Buffer.from(this.lines.join(''));
    this.lines = [];
    this.waitingBytes = 0;
    this.writeSome();
  }

  private readonly writeSome = (): void => {
    this.inFlight = true;
    fs.write(this.fd, this.writing!, (err, written) => {
      this.inFlight = false;
      if (!this.writing) return; // the process is exiting: flushSync ran meanwhile
      if (err?.code === 'EAGAIN') {
        // A non-blocking stdout that is full: try again shortly, without holding the process open.
        setTimeout(this.writeSome, RETRY_MS).unref();
        return;
      }
      if (err) {
        // stdout is gone (a closed pipe): these lines cannot be written, and are counted as dropped.
        this.onDrop(countLines(this.writing));
        this.writing = undefined;
      } else {
        this.writing = written < this.writing.length ? this.writing.subarray(written) : undefined;
      }
      if (this.writing) this.writeSome();
      else if (this.waitingBytes >= WRITE_BYTES) this.startWrite();
    });
  };
}

const countLines = (chunk: Buffer): number => {
  let lines = 0;
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
  return lines;
};
