/**
 * The S3 client's GetObject reader against a scripted HTTP/1.1 server over real sockets: the shapes
 * of answer it reads itself, the ones it hands to node:http, and every way a connection can fail.
 * test/s3 and the blob-store contract run it against Ceph RGW.
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterEach, describe, expect, it } from 'vitest';
import { S3HttpHandler } from '../../src/storage/s3-http-handler.js';

interface Received {
  connection: number;
  head: string;
  target: string;
}

/** An HTTP/1.1 server whose answers the test writes byte by byte. */
async function scriptedServer(answer: (socket: net.Socket, req: Received, nth: number) => void) {
  const requests: Received[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const req = { connection, head, target: head.split(' ')[1] ?? '' };
        requests.push(req);
        answer(socket, req, requests.length);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    requests,
    connections: () => connections,
    open: () => sockets.size,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const ok = (body: Buffer | string, extra = '') =>
  `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\netag: "e"\r\n${extra}\r\n${body}`;

const handlers: S3HttpHandler[] = [];
const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const h of handlers.splice(0)) h.destroy();
  for (const s of servers.splice(0)) await s.close();
});

function handler(opts: { socketTimeoutMs?: number; idleTimeoutMs?: number } = {}) {
  const socketTimeoutMs = opts.socketTimeoutMs ?? 5_000;
  const h = new S3HttpHandler(new NodeHttpHandler({ connectionTimeout: 2_000, socketTimeout: socketTimeoutMs }), {
    connectionTimeoutMs: 2_000,
    socketTimeoutMs,
    tls: {},
    idleTimeoutMs: opts.idleTimeoutMs,
  });
  handlers.push(h);
  return h;
}

async function serve(answer: Parameters<typeof scriptedServer>[0]) {
  const server = await scriptedServer(answer);
  servers.push(server);
  return server;
}

function getObject(
  port: number,
  key = 'file-1',
  headers: Record<string, string> = {},
  query: Record<string, string> = { 'x-id': 'GetObject' },
) {
  return {
    method: 'GET',
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    path: `/bucket/${key}`,
    query,
    headers: { 'x-amz-date': '20261128T000000Z', ...headers },
  } as unknown as Parameters<S3HttpHandler['handle']>[0];
}

async function readAll(body: unknown): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of body as Readable) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err as Error & { code?: string },
  );

describe('S3HttpHandler', () => {
  it('reads a GetObject answer itself and reuses the connection for the next one', async () => {
    const big = Buffer.alloc(3 << 20, 'x');
    const server = await serve((socket, req) => socket.write(ok(req.target.includes('big') ? big : 'hello')));
    const h = handler();
    const first = await h.handle(getObject(server.port));
    expect(first.response.statusCode).toBe(200);
    expect(first.response.headers).toMatchObject({ 'content-length': '5', etag: '"e"' });
    expect((await readAll(first.response.body)).toString()).toBe('hello');
    const second = await h.handle(getObject(server.port, 'file-big'));
    expect((await readAll(second.response.body)).equals(big)).toBe(true);
    expect(server.connections()).toBe(1);
    // the request went out as the SDK signed it, with the query and a host header
    expect(server.requests[0]!.head).toMatch(/^GET \/bucket\/file-1\?x-id=GetObject HTTP\/1\.1\r\n/);
    expect(server.requests[0]!.head).toContain('x-amz-date: 20261128T000000Z');
    expect(server.requests[0]!.head).toContain(`host: 127.0.0.1:${server.port}`);
  });

  it('passes a range on and reads a 206, even with its head and body split in odd pieces', async () => {
    const server = await serve((socket, req) => {
      const range = /range: bytes=(\d+)-(\d+)/.exec(req.head)!;
      const body = 'abcdefghij'.slice(Number(range[1]), Number(range[2]) + 1);
      const text = `HTTP/1.1 206 Partial Content\r\nContent-Range: bytes ${range[1]}-${range[2]}/10\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      // one byte per write, each its own TCP segment
      let i = 0;
      const next = () => (i < text.length ? socket.write(text[i++]!, () => setImmediate(next)) : undefined);
      next();
    });
    const res = await handler().handle(getObject(server.port, 'file-1', { range: 'bytes=2-6' }));
    expect(res.response.statusCode).toBe(206);
    expect(res.response.headers['content-range']).toBe('bytes 2-6/10');
    expect((await readAll(res.response.body)).toString()).toBe('cdefg');
  });

  it('reads an empty object and keeps the connection', async () => {
    const server = await serve((socket) => socket.write(ok('')));
    const h = handler();
    for (let i = 0; i < 3; i++)
      expect((await readAll((await h.handle(getObject(server.port))).response.body)).length).toBe(0);
    expect(server.connections()).toBe(1);
  });

  it('does not reuse a connection the server closes, or one that sent more than its Content-Length', async () => {
    const server = await serve((socket, req) => {
      if (req.target.includes('close')) socket.end(ok('bye', 'connection: close\r\n'));
      else socket.write(`${ok('four')}STRAY`);
    });
    const h = handler();
    expect((await readAll((await h.handle(getObject(server.port, 'file-close'))).response.body)).toString()).toBe(
      'bye',
    );
    expect((await readAll((await h.handle(getObject(server.port, 'file-stray'))).response.body)).toString()).toBe(
      'four',
    );
    expect((await readAll((await h.handle(getObject(server.port, 'file-stray'))).response.body)).toString()).toBe(
      'four',
    );
    expect(server.connections()).toBe(3);
  });

  it('sends errors, chunked bodies and HTTP/1.0 answers through node:http, which reads them all', async () => {
    const server = await serve((socket, req) => {
      const n = server.requests.filter((r) => r.target === req.target).length;
      if (req.target.includes('missing')) {
        const xml = '<Error><Code>NoSuchKey</Code></Error>';
        socket.write(
          `HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\ncontent-length: ${xml.length}\r\n\r\n${xml}`,
        );
      } else if (req.target.includes('chunked')) {
        socket.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n`);
      } else socket.end(`HTTP/1.0 200 OK\r\ncontent-length: 5\r\n\r\nold-${n}`);
    });
    const h = handler();
    const missing = await h.handle(getObject(server.port, 'file-missing'));
    expect(missing.response.statusCode).toBe(404);
    expect((await readAll(missing.response.body)).toString()).toContain('NoSuchKey');
    expect((await readAll((await h.handle(getObject(server.port, 'file-chunked'))).response.body)).toString()).toBe(
      'abcde',
    );
    // HTTP/1.0, even with a Content-Length
    expect((await readAll((await h.handle(getObject(server.port, 'file-old'))).response.body)).toString()).toBe(
      'old-2',
    );
    // each was asked twice: once here, once through node:http
    expect(server.requests.map((r) => r.target.split('?')[0])).toEqual([
      '/bucket/file-missing',
      '/bucket/file-missing',
      '/bucket/file-chunked',
      '/bucket/file-chunked',
      '/bucket/file-old',
      '/bucket/file-old',
    ]);
  });

  it('leaves every other request to node:http', async () => {
    const server = await serve((socket) => socket.write(ok('<Tagging/>')));
    const res = await handler().handle(getObject(server.port, 'file-1?tagging', {}, { 'x-id': 'GetObjectTagging' }));
    expect((await readAll(res.response.body)).toString()).toBe('<Tagging/>');
    // node:http's own header casing and keep-alive header
    expect(server.requests[0]!.head).toMatch(/\r\nConnection: keep-alive/i);
  });

  it('fails the body, without reusing the connection, when the server stops short', async () => {
    const server = await serve((socket, req) => {
      if (req.target.includes('short')) socket.end(`HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n${'x'.repeat(40)}`);
      else socket.write(ok('fine'));
    });
    const h = handler();
    const err = await errorOf(readAll((await h.handle(getObject(server.port, 'file-short'))).response.body));
    expect(err?.code).toBe('ECONNRESET');
    expect(err?.message).toContain('60 bytes of the object still to come');
    expect((await readAll((await h.handle(getObject(server.port))).response.body)).toString()).toBe('fine');
    expect(server.connections()).toBe(2);
  });

  it('closes the connection when the reader gives the body up, and holds the server back while it does not read', async () => {
    const total = 64 << 20;
    let written = 0;
    const server = await serve((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${total}\r\n\r\n`);
      const piece = Buffer.alloc(1 << 20);
      const pump = () => {
        while (written < total) {
          written += piece.length;
          if (!socket.write(piece)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
    const res = await handler().handle(getObject(server.port));
    const body = res.response.body as Readable;
    // a reader that takes one piece and stops
    body.once('data', () => body.pause());
    await new Promise((r) => setTimeout(r, 300));
    // backpressure: the unread body holds a few socket buffers, not the object
    expect(written).toBeLessThan(total / 2);
    expect(body.readableLength).toBeLessThan(1 << 20);
    body.destroy();
    await expect.poll(() => server.open()).toBe(0);
  });

  it('times out a silent server, waiting for the head or in the body', async () => {
    const server = await serve((socket, req) => {
      if (req.target.includes('stall-body')) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    });
    const h = handler({ socketTimeoutMs: 200 });
    const head = await errorOf(h.handle(getObject(server.port, 'file-stall-head')));
    expect(head).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    const res = await h.handle(getObject(server.port, 'file-stall-body'));
    expect(await errorOf(readAll(res.response.body))).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    await expect.poll(() => server.open()).toBe(0);
  });

  it('sends the request again on a new connection when the server closed the idle one', async () => {
    // the server drops every connection as its second request arrives: the race of an idle close
    const server = await serve((socket, req) =>
      server.requests.filter((r) => r.connection === req.connection).length === 2
        ? socket.destroy()
        : socket.write(ok('ok')),
    );
    const h = handler();
    for (let i = 0; i < 3; i++)
      expect((await readAll((await h.handle(getObject(server.port))).response.body)).toString()).toBe('ok');
    expect(server.connections()).toBe(3);
  });

  it('forgets idle connections the server closes or that idle too long', async () => {
    let closeAfterAnswer = true;
    const server = await serve((socket) => {
      socket.write(ok('ok'));
      if (closeAfterAnswer) setTimeout(() => socket.destroy(), 50);
    });
    const h = handler({ idleTimeoutMs: 100 });
    await readAll((await h.handle(getObject(server.port))).response.body);
    await expect.poll(() => server.open()).toBe(0);
    closeAfterAnswer = false;
    await readAll((await h.handle(getObject(server.port))).response.body);
    expect(server.connections()).toBe(2);
    // and the gateway closes its own idle connection after idleTimeoutMs
    await expect.poll(() => server.open()).toBe(0);
  });

  it('reports a refused connection and an abort with the codes the SDK retries and reports', async () => {
    const server = await serve(() => {});
    const port = server.port;
    await server.close();
    servers.length = 0;
    expect(await errorOf(handler().handle(getObject(port)))).toMatchObject({ code: 'ECONNREFUSED' });

    const silent = await serve(() => {});
    const abort = new AbortController();
    const pending = errorOf(handler().handle(getObject(silent.port), { abortSignal: abort.signal as never }));
    await expect.poll(() => silent.requests.length).toBe(1);
    abort.abort();
    expect(await pending).toMatchObject({ name: 'AbortError' });
    await expect.poll(() => silent.open()).toBe(0);
  });

  it('refuses a malformed answer and a request that would break the request line', async () => {
    const server = await serve((socket) => socket.write('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n'));
    const h = handler();
    expect(await errorOf(h.handle(getObject(server.port)))).toMatchObject({ code: 'EPROTO' });
    expect(await errorOf(h.handle(getObject(server.port, 'file 1')))).toBeInstanceOf(Error);
    expect(await errorOf(h.handle(getObject(server.port, 'file-1', { 'x-bad': 'a\r\nx-injected: 1' })))).toMatchObject({
      code: 'ERR_INVALID_CHAR',
    });
    expect(server.requests).toHaveLength(1);
  });
});
