import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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
  if (gatewayError.status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ code: gatewayError.code, status: gatewayError.status }, gatewayError.message);
  if (reply.sent || reply.raw.headersSent) return;
  // Router errors (bad URL, over-long parameter) arrive before the onRequest hook that sets it.
  reply.header('x-request-id', request.id);
  // A body we stopped reading midway (limit breach, bad part) cannot be resynchronised: close after
  // replying. One never started (a refused key) is drained by Node, so the client can finish sending
  // and read the answer instead of failing on a reset connection.
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
