/** HTTP over a raw socket, for what a client library would hide: bodies cut short, trickles, early answers. */
import net from 'node:net';
import { expect } from 'vitest';

export interface Exchange {
  socket: net.Socket;
  /** Everything received so far. */
  received: () => string;
  /** Resolves when the server closes the connection, with all it sent and how long that took. */
  closed: Promise<{ received: string; afterMs: number }>;
}

/** A connection to the gateway at `url`, recording what it sends. */
export function connect(url: string): Promise<Exchange> {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  let received = '';
  const start = Date.now();
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<{ received: string; afterMs: number }>((resolve) =>
    socket.on('close', () => resolve({ received, afterMs: Date.now() - start })),
  );
  return new Promise((resolve) => socket.once('connect', () => resolve({ socket, received: () => received, closed })));
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The first HTTP response in `raw`, with lower-cased header names. */
export function parseAnswer(raw: string): Answer {
  const split = raw.indexOf('\r\n\r\n');
  expect(split, raw).toBeGreaterThan(0);
  const [statusLine, ...lines] = raw.slice(0, split).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf(':');
    headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
  }
  return { status, headers, body: raw.slice(split + 4) };
}
