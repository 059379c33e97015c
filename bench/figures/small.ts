import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { cpuSeconds } from '../lib/cpu.js';
import { uploadFile } from '../lib/http.js';
import { requestLoad, type RequestLoad, type RequestShape } from '../lib/request-load.js';
import { sideBySide } from '../lib/stats.js';
import type { BenchContext } from './context.js';
import { compare, judge, log, type Figure, type FigureModule } from './figure.js';

const SMALL = 64 * 1024;
const BOUNDARY = 'bench-small-0123456789';

/** The 64 KiB of every small file, ASCII (autocannon reads a body file as UTF-8), in the run's folder. */
async function smallBodies(ctx: BenchContext): Promise<{ content: string; multipart: string }> {
  const content = path.join(ctx.tmp, 'small.txt');
  const multipart = path.join(ctx.tmp, 'small.multipart');
  if (!existsSync(multipart)) {
    const text = '0123456789abcdef'.repeat(SMALL / 16);
    await writeFile(content, text);
    // the file part first, as openai-node sends it
    await writeFile(
      multipart,
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="small.txt"\r\n` +
        `Content-Type: text/plain\r\n\r\n${text}\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n--${BOUNDARY}--\r\n`,
    );
  }
  return { content, multipart };
}

/** One 64 KiB `POST /v1/files` (multipart, as a client of the Files API sends it), for autocannon. */
export const smallUpload = async (ctx: BenchContext): Promise<RequestShape> => ({
  method: 'POST',
  headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
  bodyFile: (await smallBodies(ctx)).multipart,
});

/** A load of `url` by the figure's clients, with the CPU milliseconds per answered request of the process `pid`. */
export async function smallLoad(
  ctx: BenchContext,
  pid: number | undefined,
  url: string,
  shape: RequestShape,
  limit: { seconds: number } | { requests: number },
): Promise<RequestLoad & { cpuMs: number }> {
  const before = cpuSeconds(pid);
  const load = await requestLoad(url, limit, ctx.options.smallConnections, shape);
  return { ...load, cpuMs: ((cpuSeconds(pid) - before) * 1000) / load.ok };
}

/**
 * 64 KiB files by `smallConnections` autocannon clients in a process of their own, `smallSeconds`
 * each run: uploads through a fresh gateway on a bucket of its own against PutObject, and content
 * reads against GetObject, S3's side through presigned URLs. autocannon sends one URL, so every
 * direct upload overwrites one fixed key, while every gateway upload makes a file. Each side gets
 * 500 unrecorded requests first.
 */
export const small: FigureModule = {
  name: 'small',
  uses: ['s3'],
  async measure(ctx) {
    const { runs, smallSeconds, smallConnections } = ctx.options;
    const { content } = await smallBodies(ctx);
    return ctx.onOwnBucket('small', async (gw, s3) => {
      const presign = (command: PutObjectCommand | GetObjectCommand) =>
        getSignedUrl(s3.target.client, command, { expiresIn: 24 * 3600 });
      const readKey = 'small-read';
      await s3.target.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: readKey, Body: content }));
      const kinds = [
        {
          name: `64 KiB uploads, ${smallConnections} clients`,
          gateway: { url: `${gw.url}/v1/files`, shape: await smallUpload(ctx) },
          directName: 'presigned PutObject',
          direct: {
            url: await presign(new PutObjectCommand({ Bucket: s3.bucket, Key: 'small-put' })),
            shape: { method: 'PUT', headers: { 'content-type': 'text/plain' }, bodyFile: content } as RequestShape,
          },
          maxP99Ratio: 2,
        },
        {
          name: `64 KiB content reads, ${smallConnections} clients`,
          gateway: { url: `${gw.url}/v1/files/${await uploadFile(gw.url, SMALL)}/content`, shape: {} },
          directName: 'presigned GetObject',
          direct: { url: await presign(new GetObjectCommand({ Bucket: s3.bucket, Key: readKey })), shape: {} },
          maxP99Ratio: undefined,
        },
      ];
      const figures: Figure[] = [];
      for (const kind of kinds) {
        log(`small: ${kind.name}, ${runs} x ${smallSeconds} s each side (autocannon)`);
        const side = (pid: number | undefined, { url, shape }: { url: string; shape: RequestShape }) => {
          let warm = true;
          return async () => {
            if (warm) await smallLoad(ctx, pid, url, shape, { requests: 500 });
            warm = false;
            return smallLoad(ctx, pid, url, shape, { seconds: smallSeconds });
          };
        };
        const { a: g, b: d } = await sideBySide(runs, side(gw.pid, kind.gateway), side(undefined, kind.direct));
        const sides = (f: (l: RequestLoad) => number) => ({ gateway: g.map(f), direct: d.map(f) });
        const rps = sides((l) => l.rps);
        const p99 = sides((l) => l.p99Ms);
        const throughput = compare(kind.name, 'req/s', rps.gateway, kind.directName, rps.direct, 0.8);
        throughput.detail = { failed: sides((l) => l.failed), p50Ms: sides((l) => l.p50Ms) };
        if (g.some((l) => l.failed > 0)) {
          throughput.met = false;
          log(`${kind.name}: the gateway failed ${g.map((l) => l.failed).join(', ')} requests`);
        }
        figures.push(
          throughput,
          compare(`${kind.name}: p99`, 'ms', p99.gateway, kind.directName, p99.direct, { maxRatio: kind.maxP99Ratio }),
          judge(
            `${kind.name}: gateway CPU`,
            'CPU ms/req',
            g.map((l) => l.cpuMs),
          ),
        );
      }
      return figures;
    });
  },
};
