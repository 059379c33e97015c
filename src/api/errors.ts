import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';

/** Fastify's own 4xx errors (bad JSON, unsupported media type, schema validation) as GatewayErrors. */
function fromFastify(err: FastifyError): GatewayError {
  if (err.validation && err.validation.length > 0) {
    const v = err.validation[0]!;
    const missing = (v.params as { missingProperty?: string } | undefined)?.missingProperty;
    const param = missing ?? (v.instancePath.replace(/^\//, '').replaceAll('/', '.') || null);
    return new GatewayError(
      400,
      'invalid_request_error',
      'invalid_request',
      `Invalid ${err.validationContext ?? 'request'}: ${err.message}`,
      param,
    );
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    // The router's own message repeats the whole (over-long) URL back.
    const message = status === 414 ? 'The URL is too long.' : err.message;
    return new GatewayError(status, 'invalid_request_error', (err.code ?? 'invalid_request').toLowerCase(), message);
  }
  return new GatewayError(
    500,
    'server_error',
    'internal_error',
    'The server had an error while processing your request.',
    null,
    {
      cause: err,
    },
  );
}

/** Every failure leaves as the OpenAI error envelope, always as application/json. */
export function sendError(err: FastifyError | GatewayError, request: FastifyRequest, reply: FastifyReply): void {
  const gatewayError = err instanceof GatewayError ? err : fromFastify(err);
  // A client that hung up mid-body (ECONNRESET, "aborted") is not a server failure: nobody hears
  // the answer, and the metrics count it as 499.
  if (request.raw.readableAborted && !reply.raw.headersSent) {
    request.log.info({ code: (err as { code?: string }).code }, 'request aborted by the client');
  } else if (gatewayError.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: gatewayError.code, status: gatewayError.status }, gatewayError.message);
  if (reply.sent || reply.raw.headersSent) return;
  // Router errors (bad URL, over-long parameter) arrive before the onRequest hook that sets it.
  reply.header('x-request-id', request.id);
  // A body we stopped reading midway (limit breach, bad part) cannot be resynchronised: close after
  // replying. One never started is drained by Node, so the client can finish sending and read the
  // answer instead of failing on a reset connection; a refused key's (401) is not: its error says
  // Connection: close, and Node closes the socket once the answer is out.
  if (!request.raw.complete && request.raw.readableDidRead) reply.header('connection', 'close');
  void reply
    .code(gatewayError.status)
    .headers(gatewayError.headers)
    .type('application/json')
    .send(gatewayError.toEnvelope());
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler(sendError);
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .type('application/json')
      .send(
        new GatewayError(
          404,
          'invalid_request_error',
          'route_not_found',
          `Route ${request.method} ${request.url.split('?')[0]} not found.`,
        ).toEnvelope(),
      );
  });
}

/** An Expect header other than 100-continue: nothing here can meet it (RFC 9110, section 10.1.1). */
export const expectationFailed = (): GatewayError =>
  new GatewayError(
    417,
    'invalid_request_error',
    'expectation_failed',
    'The Expect header can only be 100-continue.',
    null,
    { headers: { connection: 'close' } },
  );

/** Node's parser errors worth telling apart; every other parse error is a 400. */
const CLIENT_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'request_timeout',
    message: 'The request headers did not arrive in time.',
  },
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'headers_too_large',
    message: 'The request line and headers are too large.',
  },
};

/**
 * Fastify's clientErrorHandler: requests Node's HTTP parser refuses (a bad request line, method,
 * URL byte or chunk size, Content-Length with Transfer-Encoding, oversized headers, headers too
 * slow) never reach a route, so this answers them on the raw socket, in the same envelope as
 * everything else, and closes the connection: the rest of the stream cannot be trusted.
 */
export function clientErrorHandler(log: FastifyBaseLogger): (err: { code?: string }, socket: Socket) => void {
  return (err, socket) => {
    // A reset or closed connection has nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const known = CLIENT_ERRORS[err.code ?? ''];
    // llhttp's reason is a fixed phrase ("Invalid character in chunk size"), never the client's bytes.
    const reason = (err as { reason?: unknown }).reason;
    const { status, code, message } = known ?? {
      status: 400,
      code: 'malformed_request',
      message:
        typeof reason === 'string'
          ? `The request is not valid HTTP/1.1: ${reason}.`
          : 'The request is not valid HTTP/1.1.',
    };
    log.debug({ code: err.code, status }, message);
    // An answer already under way on this connection must not get another one spliced into it.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) {
      const body = JSON.stringify(new GatewayError(status, 'invalid_request_error', code, message).toEnvelope());
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}
