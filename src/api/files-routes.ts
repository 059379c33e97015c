import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FileContent, FileService, RangeSpec } from '../files/file-service.js';
import type { GatewayMetrics } from '../metrics.js';
import { countBytes, uploadOutcome } from './http-metrics.js';
import { isTooSlow } from './limits.js';
import { formParts } from './multipart.js';
import { fileIdParamsSchema, listQuerySchema, responses } from './schemas.js';
import { FILE_OBJECT, fileListJson, toFileObject } from './wire.js';

interface ListQuery {
  limit?: number;
  order?: 'asc' | 'desc';
  after?: string;
  purpose?: string;
}
type WithId = { Params: { file_id: string } };

/** Files API routes, mounted once per prefix (/v1, /v1/openai/v1, /alpha) by app.ts. */
export async function filesRoutes(
  app: FastifyInstance,
  opts: { files: FileService; metrics: GatewayMetrics },
): Promise<void> {
  const { files, metrics } = opts;

  app.post('/files', { schema: { response: responses.file } }, async (request) => {
    let failure: unknown;
    try {
      return toFileObject(
        await files.upload(
          request.tenant,
          formParts(request, (n) => metrics.bytesReceived.inc(n)),
        ),
      );
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      metrics.uploads.inc({ outcome: isTooSlow(failure) ? 'too_slow' : uploadOutcome(failure, request) });
    }
  });

  // The catalog renders the page as JSON text, sent as it is: the JSON content type keeps fastify's
  // serialiser out of it, and the response schema still documents it.
  const list = async (request: FastifyRequest<{ Querystring: ListQuery }>, reply: FastifyReply) =>
    reply
      .type('application/json; charset=utf-8')
      .send(fileListJson(await files.list(request.tenant, request.query, FILE_OBJECT)));
  const listSchema = { schema: { querystring: listQuerySchema, response: responses.list } };
  app.get('/files', listSchema, list);
  // Only the /alpha mount also answers .../files/list (the form some deployment notes use).
  if (app.prefix === '/alpha') app.get('/files/list', listSchema, list);

  const byId = { schema: { params: fileIdParamsSchema, response: responses.file } };
  app.get<WithId>('/files/:file_id', byId, async (request) =>
    toFileObject(await files.retrieve(request.tenant, request.params.file_id)),
  );

  app.delete<WithId>(
    '/files/:file_id',
    { schema: { params: fileIdParamsSchema, response: responses.deleted } },
    async (request) => {
      const deleted = await files.delete(request.tenant, request.params.file_id);
      return { id: deleted.id, object: 'file' as const, deleted: true };
    },
  );

  // HEAD is declared on its own so it never opens the bytes.
  app.get<WithId>(
    '/files/:file_id/content',
    { schema: { params: fileIdParamsSchema }, exposeHeadRoute: false },
    async (request, reply) => {
      if (files.linksContent) return redirectToContent(request, reply);
      const content = await files.openContent(request.tenant, request.params.file_id, requestedRange(request));
      if (matchesIfNoneMatch(request, content.etag)) {
        content.stream.destroy();
        return reply.code(304).headers(contentHeaders(content, false)).send();
      }
      return reply
        .code(content.range ? 206 : 200)
        .headers(contentHeaders(content, true))
        .send(countBytes(content.stream, (n) => metrics.bytesSent.inc(n)));
    },
  );

  /**
   * FILES_DOWNLOAD_REDIRECT=presigned: the bytes come from the store, through a URL that answers
   * with this route's Content-Type and Content-Disposition. A Range header is left to the client to
   * send again there (clients re-send it on a redirect); If-None-Match is still answered here.
   */
  const redirectToContent = async (request: FastifyRequest<WithId>, reply: FastifyReply) => {
    const link = await files.contentLink(request.tenant, request.params.file_id, (file) => ({
      contentType: CONTENT_TYPE,
      contentDisposition: contentDisposition(file.filename),
    }));
    if (matchesIfNoneMatch(request, link.etag)) {
      return reply
        .code(304)
        .headers(contentHeaders({ ...link, range: undefined }, false))
        .send();
    }
    metrics.downloadRedirects.inc();
    // A cached redirect would outlive its URL.
    return reply.code(302).headers({ location: link.url, 'cache-control': 'no-store' }).send();
  };

  // HEAD stays here even with redirects: it carries no bytes, so sending it away would save nothing.
  app.head<WithId>('/files/:file_id/content', { schema: { params: fileIdParamsSchema } }, async (request, reply) => {
    const { file, size, etag } = await files.statContent(request.tenant, request.params.file_id);
    return reply
      .code(200)
      .headers({ ...contentHeaders({ file, etag, size, range: undefined }, false), 'content-length': String(size) })
      .send();
  });
}

const CONTENT_TYPE = 'application/octet-stream';

function contentHeaders(c: Omit<FileContent, 'stream'>, withBody: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': CONTENT_TYPE,
    'accept-ranges': 'bytes',
    etag: c.etag,
    'content-disposition': contentDisposition(c.file.filename),
    'last-modified': new Date(c.file.createdAt * 1000).toUTCString(),
  };
  if (!withBody) return headers;
  if (c.range) {
    headers['content-range'] = `bytes ${c.range.start}-${c.range.end}/${c.size}`;
    headers['content-length'] = String(c.range.end - c.range.start + 1);
  } else {
    headers['content-length'] = String(c.size);
  }
  return headers;
}

/**
 * One `bytes=` range, or undefined to send the whole file: several ranges, malformed values and
 * conditional (If-Range) requests all get the full file, which RFC 9110 allows.
 */
export function requestedRange(request: FastifyRequest): RangeSpec | undefined {
  const header = request.headers.range;
  if (!header || request.headers['if-range'] !== undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') return { suffix: Number(m[2]) };
  const start = Number(m[1]);
  if (m[2] === '') return { start };
  const end = Number(m[2]);
  return end < start ? undefined : { start, end };
}

function matchesIfNoneMatch(request: FastifyRequest, etag: string): boolean {
  const header = request.headers['if-none-match'];
  if (!header) return false;
  return header.trim() === '*' || header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/**
 * RFC 6266: an ASCII-only `filename` for old clients and the exact UTF-8 name in `filename*`.
 * Quotes, backslashes and every non-printable or non-ASCII character are replaced or percent-encoded,
 * so no filename can end the header or add another.
 */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
