import type {} from '@fastify/multipart';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { GatewayError, badRequest } from '../errors.js';
import { ByteLimit } from '../files/byte-limit.js';
import type { FormPart } from '../files/upload-form.js';
import type { Limits } from '../config.js';

/** Busboy options from the configured limits: a hostile form cannot pile up memory. */
export function multipartOptions(limits: Limits['multipart']) {
  // @fastify/busboy decodes a raw filename as UTF-8 (and `filename*` in its declared charset), each
  // undecodable byte sequence as U+FFFD, which the filename rule (checkFilename) then refuses.
  return {
    limits: {
      // File size is enforced by the domain while streaming (its limit differs per operation).
      fileSize: Infinity,
      fieldNameSize: 200,
      // Two, so a second file part gets its own clear error rather than a parser limit.
      files: 2,
      ...limits,
    },
  };
}

/**
 * The request's multipart body as domain FormParts. Parser failures (truncated body, bad boundary,
 * limits) become 400s here; a client that went away surfaces as the stream error it is.
 */
export async function* formParts(
  request: FastifyRequest,
  countBytes: (n: number) => void = () => {},
): AsyncGenerator<FormPart> {
  if (!request.isMultipart()) {
    throw badRequest('invalid_content_type', 'The request must be multipart/form-data with a file and a purpose.');
  }
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        yield {
          kind: 'file',
          name: part.fieldname,
          filename: part.filename,
          stream: fileBytes(part.file, request, countBytes),
        };
      } else {
        if (part.fieldnameTruncated || part.valueTruncated) {
          throw badRequest(
            'field_too_large',
            `The field '${part.fieldname}' is larger than the server allows.`,
            part.fieldname,
          );
        }
        yield { kind: 'field', name: part.fieldname, value: String(part.value) };
      }
    }
  } catch (err) {
    throw translateParseError(err, request);
  }
}

/**
 * The file part's bytes, counted as they pass, with a parser failure inside the part (the body
 * ends mid-file, a broken boundary) reported as a 400 rather than as a raw busboy error.
 */
function fileBytes(file: Readable, request: FastifyRequest, countBytes: (n: number) => void): ByteLimit {
  const out = new ByteLimit(countBytes);
  file.on('error', (err) => out.destroy(translateParseError(err, request) as Error));
  // A consumer that gave up on a refused part (resume() and throw) no longer listens: the parser's
  // later error must not become an uncaught exception that ends the process.
  out.on('error', () => undefined);
  // The consumer gave up (size limit, store failure): stop parsing the rest of this part.
  out.on('close', () => file.destroy());
  return file.pipe(out);
}

function translateParseError(err: unknown, request: FastifyRequest): unknown {
  // A client that went away gets no answer anyway: keep its error as it is for the log.
  if (err instanceof GatewayError || request.raw.readableAborted) return err;
  const e = err as { statusCode?: number; message?: string; code?: string };
  // @fastify/multipart's limit errors carry 413 but are about form shape, not file size.
  return new GatewayError(
    400,
    'invalid_request_error',
    'invalid_multipart',
    `Malformed multipart body: ${e.message ?? String(err)}`,
    null,
    {
      cause: err,
    },
  );
}
