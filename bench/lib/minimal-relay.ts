/**
 * The baseline of the gateway's own CPU per GiB: a Files API relay to S3 written the obvious way.
 * A fastify server with @fastify/multipart: `POST /v1/files` pipes `request.file()` into a
 * lib-storage `Upload` with its defaults (no part size or queue size given) and answers the id;
 * `GET /v1/files/:id/content` sends GetObject's body. The S3 client has the SDK's defaults (its
 * own keep-alive node:http agent) but for `requestChecksumCalculation: 'WHEN_REQUIRED'`, which RGW
 * needs (it rejects the aws-chunked uploads of the default). Started by bench/lib/load.ts with the
 * S3 server's coordinates and the bucket as JSON on stdin; prints {"address": ...} once listening.
 * The TypeScript loader compiles this file once at start, nothing per request.
 */
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import multipart from '@fastify/multipart';
import Fastify from 'fastify';

export interface RelayInput {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { endpoint, region, accessKeyId, secretAccessKey, bucket } = JSON.parse(input) as RelayInput;

const s3 = new S3Client({
  endpoint,
  region,
  forcePathStyle: true,
  credentials: { accessKeyId, secretAccessKey },
  requestChecksumCalculation: 'WHEN_REQUIRED',
});
const app = Fastify();
// without a limit @fastify/multipart stops a file at fastify's body limit (1 MiB)
await app.register(multipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER } });

app.post('/v1/files', async (request, reply) => {
  const data = await request.file();
  if (!data) return reply.code(400).send({ error: 'no file' });
  const id = `file-${randomUUID()}`;
  const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: id, Body: data.file } });
  let bytes = 0;
  upload.on('httpUploadProgress', (p) => (bytes = p.loaded ?? bytes));
  await upload.done();
  return { id, object: 'file', bytes, filename: data.filename };
});

app.get<{ Params: { id: string } }>('/v1/files/:id/content', async (request, reply) => {
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: request.params.id }));
  return reply.send(res.Body);
});

const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ address })}\n`);
process.once('SIGTERM', () => void app.close().then(() => s3.destroy()));
