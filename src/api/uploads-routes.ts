import type { FastifyInstance } from 'fastify';
import type { CreateUploadParams, UploadService } from '../files/upload-service.js';
import { formParts } from './multipart.js';
import { completeUploadBodySchema, createUploadBodySchema, responses, uploadIdParamsSchema } from './schemas.js';
import { toUploadObject, toUploadPart } from './wire.js';

type WithId = { Params: { upload_id: string } };
const params = uploadIdParamsSchema;

/** Uploads API routes (a large file in parts), mounted under /v1 and /v1/openai/v1 by app.ts. */
export async function uploadsRoutes(app: FastifyInstance, opts: { uploads: UploadService }): Promise<void> {
  const { uploads } = opts;

  app.post<{ Body: CreateUploadParams }>(
    '/uploads',
    { schema: { body: createUploadBodySchema, response: responses.upload } },
    async (request) => toUploadObject(await uploads.create(request.tenant, request.body)),
  );

  app.post<WithId>(
    '/uploads/:upload_id/parts',
    { schema: { params, response: responses.uploadPart } },
    async (request) =>
      toUploadPart(await uploads.addPart(request.tenant, request.params.upload_id, formParts(request))),
  );

  app.post<WithId & { Body: { part_ids: string[]; md5?: string } }>(
    '/uploads/:upload_id/complete',
    { schema: { params, body: completeUploadBodySchema, response: responses.upload } },
    async (request) =>
      toUploadObject(
        await uploads.complete(request.tenant, request.params.upload_id, request.body.part_ids, request.body.md5),
      ),
  );

  // openai-node sends no body (Content-Length: 0, no Content-Type).
  app.post<WithId>('/uploads/:upload_id/cancel', { schema: { params, response: responses.upload } }, async (request) =>
    toUploadObject(await uploads.cancel(request.tenant, request.params.upload_id)),
  );
}
