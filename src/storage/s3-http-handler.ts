/**
 * The S3 client's HTTP handler. GetObject is the gateway's hot path: every downloaded byte passes
 * through it, and node:http's client charges each 64 KiB piece of a response body a copy out of
 * the socket's buffer (its parser's on_body), an allocation and a trip through an IncomingMessage:
 * a large share of the gateway's CPU per GiB downloaded
 * (docs/decisions/0002-s3-getobject-bodies-from-the-socket.md). Here a GetObject answer's head is
 * parsed once and its body is the socket's own pieces, counted against Content-Length, on
 * keep-alive connections of its own.
 *
 * Only the one shape every S3 server gives a successful GetObject is read this way: HTTP/1.1 200 or
 * 206 with a Content-Length and no Transfer-Encoding. Any other answer (an error, a redirect, a
 * chunked body) is dropped and the request sent again through NodeHttpHandler, which reads
 * whatever HTTP allows and lets the SDK parse error bodies; so is every other request.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { buildQueryString, HttpResponse } from '@smithy/core/protocols';
import type { NodeHttpHandler } from '@smithy/node-http-handler';

type HttpRequest = Parameters<NodeHttpHandler['handle']>[0];
type HandlerOptions = NonNullable<Parameters<NodeHttpHandler['handle']>[1]>;
type HandlerResult = Awaited<ReturnType<NodeHttpHandler['handle']>>;

export interface GetObjectSocketOptions {
  /** How long a new connection may take (the SDK's connectionTimeout). */
  connectionTimeoutMs: number;
  /** How long a connection in use may stay silent, head or body (the SDK's socketTimeout). */
  socketTimeoutMs: number;
  /** For https endpoints: the same trust settings as the SDK's https agent. */
  tls: Pick<tls.ConnectionOptions, 'ca' | 'rejectUnauthorized'>;
  /** Idle connections kept per endpoint. */
  maxIdle?: number;
  /** An idle connection is closed after this long: short, so that the gateway rather than the server closes it. */
  idleTimeoutMs?: number;
}

/** S3 response heads are a few hundred bytes; user metadata adds at most 2 KiB. */
const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

const isGetObject = (req: HttpRequest): boolean =>
  req.method === 'GET' && req.query?.['x-id'] === 'GetObject' && req.body === undefined;

/** Errors carry Node's codes, so the SDK retries them as it retries node:http's. */
function networkError(message: string, code: string, name = 'Error'): Error {
  return Object.assign(new Error(message), { code, name });
}
const timeoutError = (what: string, ms: number) =>
  networkError(`S3 ${what} timed out after ${ms} ms`, 'ETIMEDOUT', 'TimeoutError');

/** A pooled connection the server closed while it was idle: the request never reached it. */
class StaleConnection extends Error {}

interface ResponseHead {
  http11: boolean;
  keepAlive: boolean;
  statusCode: number;
  reason: string;
  headers: Record<string, string>;
  /** Body bytes that arrived with the head. */
  rest: Buffer;
}

function parseHead(buf: Buffer, end: number): ResponseHead {
  const [statusLine = '', ...lines] = buf.toString('latin1', 0, end).split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!status)
    throw networkError(
      `S3 answered with a malformed status line: ${JSON.stringify(statusLine.slice(0, 100))}`,
      'EPROTO',
    );
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0)
      throw networkError(`S3 answered with a malformed header line: ${JSON.stringify(line.slice(0, 100))}`, 'EPROTO');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    // repeated headers joined as NodeHttpHandler joins node:http's
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return {
    http11: status[1] === '1',
    keepAlive: !(headers.connection?.toLowerCase().includes('close') ?? false),
    statusCode: Number(status[2]),
    reason: status[3] ?? '',
    headers,
    rest: buf.subarray(end + HEAD_END.length),
  };
}

/** The body length when this reader takes the answer, else undefined. */
function streamedLength(head: ResponseHead): number | undefined {
  if (!head.http11 || (head.statusCode !== 200 && head.statusCode !== 206)) return undefined;
  if (head.headers['transfer-encoding'] !== undefined) return undefined;
  const length = head.headers['content-length'];
  return length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
}

function requestText(req: HttpRequest): string {
  const query = req.query ? buildQueryString(req.query) : '';
  const target = query ? `${req.path}?${query}` : req.path;
  if (!/^\/[\x21-\x7e]*$/.test(target)) throw new Error(`invalid S3 request target ${JSON.stringify(target)}`);
  let text = `GET ${target} HTTP/1.1\r\n`;
  let hasHost = false;
  for (const [name, value] of Object.entries(req.headers)) {
    validateHeaderName(name);
    validateHeaderValue(name, value);
    hasHost ||= name.toLowerCase() === 'host';
    text += `${name}: ${value}\r\n`;
  }
  if (!hasHost) text += `host: ${req.hostname}${req.port ? `:${req.port}` : ''}\r\n`;
  return `${text}\r\n`;
}

/**
 * Exactly `length` bytes of the socket. Once they are all read the socket goes back to the pool
 * (`release`); a body given up early, cut short or followed by stray bytes closes it instead.
 */
class ResponseBody extends Readable {
  private remaining: number;
  private done = false;

  constructor(
    private readonly socket: net.Socket,
    length: number,
    first: Buffer,
    private readonly release: ((socket: net.Socket) => void) | undefined,
  ) {
    super();
    this.remaining = length;
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('timeout', this.onTimeout);
    if (first.length > 0) this.onData(first);
    else if (length === 0) this.finish(true);
  }

  private readonly onData = (piece: Buffer): void => {
    if (this.done) return;
    const stray = piece.length > this.remaining;
    if (stray) piece = piece.subarray(0, this.remaining);
    this.remaining -= piece.length;
    const wantsMore = this.push(piece);
    if (this.remaining === 0) this.finish(!stray);
    else if (!wantsMore) this.socket.pause();
  };

  private readonly onClose = (): void => {
    this.destroy(
      networkError(`S3 closed the connection with ${this.remaining} bytes of the object still to come`, 'ECONNRESET'),
    );
  };
  private readonly onError = (err: Error): void => {
    this.destroy(err);
  };
  private readonly onTimeout = (): void => {
    this.destroy(timeoutError('object read', this.socket.timeout ?? 0));
  };

  private detach(): void {
    this.done = true;
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('error', this.onError);
    this.socket.off('timeout', this.onTimeout);
  }

  private finish(reusable: boolean): void {
    this.detach();
    if (reusable && this.release) this.release(this.socket);
    else this.socket.destroy();
    this.push(null);
  }

  override _read(): void {
    if (!this.done) this.socket.resume();
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    if (!this.done) {
      this.detach();
      this.socket.destroy();
    }
    callback(err);
  }
}

export class S3HttpHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  private readonly idle = new Map<string, { socket: net.Socket; drop: () => void }[]>();
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly fallback: NodeHttpHandler,
    private readonly opts: GetObjectSocketOptions,
  ) {
    this.maxIdle = opts.maxIdle ?? 64;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 4_000;
  }

  handle(request: HttpRequest, options: HandlerOptions = {}): Promise<HandlerResult> {
    return isGetObject(request) ? this.getObject(request, options) : this.fallback.handle(request, options);
  }

  updateHttpClientConfig(...args: Parameters<NodeHttpHandler['updateHttpClientConfig']>): void {
    this.fallback.updateHttpClientConfig(...args);
  }

  httpHandlerConfigs(): ReturnType<NodeHttpHandler['httpHandlerConfigs']> {
    return this.fallback.httpHandlerConfigs();
  }

  destroy(): void {
    this.fallback.destroy();
    for (const entries of this.idle.values()) for (const { socket } of entries) socket.destroy();
    this.idle.clear();
  }

  private async getObject(request: HttpRequest, options: HandlerOptions): Promise<HandlerResult> {
    const text = requestText(request);
    const origin = `${request.protocol}//${request.hostname}:${request.port ?? ''}`;
    for (;;) {
      const pooled = this.take(origin);
      const socket = pooled ?? this.connect(request);
      let head: ResponseHead;
      try {
        // the SDK hands on the AbortSignal given to send(), Node's own
        head = await exchangeHead(socket, text, pooled !== undefined, options.abortSignal as AbortSignal | undefined);
      } catch (err) {
        if (err instanceof StaleConnection) continue;
        throw err;
      }
      const length = streamedLength(head);
      if (length === undefined) {
        socket.destroy();
        return this.fallback.handle(request, options);
      }
      const release = head.keepAlive ? (s: net.Socket) => this.put(origin, s) : undefined;
      const body = new ResponseBody(socket, length, head.rest, release);
      return {
        response: new HttpResponse({ statusCode: head.statusCode, reason: head.reason, headers: head.headers, body }),
      };
    }
  }

  private connect(request: HttpRequest): net.Socket {
    let host = request.hostname;
    if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
    const secure = request.protocol === 'https:';
    const port = request.port ?? (secure ? 443 : 80);
    const socket = secure
      ? tls.connect({ host, port, ...(net.isIP(host) === 0 && { servername: host }), ...this.opts.tls })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1_000);
    const ms = this.opts.connectionTimeoutMs;
    const timer = setTimeout(() => socket.destroy(timeoutError('connection', ms)), ms);
    socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    socket.setTimeout(this.opts.socketTimeoutMs);
    return socket;
  }

  private take(origin: string): net.Socket | undefined {
    const entry = this.idle.get(origin)?.pop();
    if (!entry) return undefined;
    const { socket, drop } = entry;
    socket.off('data', drop).off('close', drop).off('error', drop).off('timeout', drop);
    socket.ref();
    socket.setTimeout(this.opts.socketTimeoutMs);
    return socket;
  }

  private put(origin: string, socket: net.Socket): void {
    let entries = this.idle.get(origin);
    if (!entries) {
      entries = [];
      this.idle.set(origin, entries);
    }
    if (entries.length >= this.maxIdle) {
      socket.destroy();
      return;
    }
    const list = entries;
    const entry = {
      socket,
      drop: () => {
        const i = list.indexOf(entry);
        if (i >= 0) list.splice(i, 1);
        socket.destroy();
      },
    };
    // Flowing, so that the server closing it is seen at once; anything it sends unasked is a fault.
    socket.on('data', entry.drop).on('close', entry.drop).on('error', entry.drop).on('timeout', entry.drop);
    socket.setTimeout(this.idleTimeoutMs);
    socket.unref();
    socket.resume();
    list.push(entry);
  }
}

/**
 * Send the request and read the answer's head. A pooled connection that ends before a byte of the
 * answer arrives was closed by the server while idle: StaleConnection, and the caller tries anew.
 */
function exchangeHead(
  socket: net.Socket,
  text: string,
  pooled: boolean,
  signal: AbortSignal | undefined,
): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    let received: Buffer | undefined;
    const settle = (err: Error | undefined, head?: ResponseHead, connectionLost = false) => {
      socket.off('data', onData).off('close', onClose).off('error', onError).off('timeout', onTimeout);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        socket.destroy();
        reject(connectionLost && pooled && received === undefined ? new StaleConnection() : err);
      } else resolve(head!);
    };
    const onData = (piece: Buffer) => {
      received = received ? Buffer.concat([received, piece]) : piece;
      const end = received.indexOf(HEAD_END);
      if (end < 0) {
        if (received.length > MAX_HEAD_BYTES)
          settle(networkError(`S3 answered with a head over ${MAX_HEAD_BYTES} bytes`, 'EPROTO'));
        return;
      }
      socket.pause();
      try {
        settle(undefined, parseHead(received, end));
      } catch (err) {
        settle(err as Error);
      }
    };
    const onClose = () =>
      settle(networkError('socket hang up: S3 closed the connection before answering', 'ECONNRESET'), undefined, true);
    const onError = (err: Error) => settle(err, undefined, true);
    const onTimeout = () => settle(timeoutError('answer', socket.timeout ?? 0));
    const onAbort = () => settle(new DOMException('The S3 request was aborted', 'AbortError'));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);
    socket.on('data', onData).on('close', onClose).on('error', onError).on('timeout', onTimeout);
    socket.write(text, 'latin1');
    socket.resume();
  });
}
