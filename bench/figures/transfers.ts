import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { discard, patternStream } from '../lib/bytes.js';
import { cpuSeconds, machineBusySeconds } from '../lib/cpu.js';
import type { GatewayProcess } from '../lib/gateway-process.js';
import { deleteFile, uploadFile } from '../lib/http.js';
import { MiB, interleaved, timedMibps } from '../lib/stats.js';
import type { BenchContext, S3Bucket } from './context.js';
import type { TransferSides } from './figure.js';

/**
 * One transfer: its throughput, and CPU seconds per GiB of the whole machine and of the server on
 * the side measured (the gateway or the minimal relay; 0 for S3 straight, which has none).
 */
export interface Transfer {
  mibps: number;
  machineCpu: number;
  serverCpu: number;
}

/** `transfer` (resolving with its MiB/s) of `bytes`, with the CPU it cost the machine and the process `pid`. */
export async function accounted(
  pid: number | undefined,
  bytes: number,
  transfer: () => Promise<number>,
): Promise<Transfer> {
  const machine = machineBusySeconds();
  const own = cpuSeconds(pid);
  const rate = await transfer();
  const gib = bytes / (1024 * MiB);
  return { mibps: rate, machineCpu: (machineBusySeconds() - machine) / gib, serverCpu: (cpuSeconds(pid) - own) / gib };
}

/**
 * `count` uploads of `size` bytes at once, `runs` times on each side, interleaved: through the
 * shared gateway, through the minimal relay and by lib-storage straight to the bucket (with the
 * gateway's part size and queue depth). Every side's files go after each run; with `keep`, the
 * gateway's last file stays as `shared.kept`, for the download figures.
 */
export async function uploadSides(
  ctx: BenchContext,
  count: number,
  size: number,
  keep: boolean,
): Promise<TransferSides> {
  const shared = await ctx.s3Gateway();
  const relay = await ctx.relay();
  const { gw, target } = shared;
  const total = count * size;
  let n = 0;
  const side =
    (pid: number | undefined, send: () => Promise<string>, remove: (ids: string[]) => Promise<unknown>) => async () => {
      let ids: string[] = [];
      const transfer = await accounted(pid, total, () =>
        timedMibps(total, async () => (ids = await Promise.all(Array.from({ length: count }, send)))),
      );
      await remove(ids);
      await target.collectGarbage();
      return transfer;
    };
  const removeObjects = (keys: string[]) => Promise.all(keys.map((key) => deleteObject(shared, key)));
  const [gateway, viaRelay, direct] = await interleaved(ctx.options.runs, [
    side(
      gw.pid,
      () => uploadFile(gw.url, size),
      async (ids) => {
        const drop = keep ? [shared.kept, ...ids.slice(1)] : ids;
        if (keep) shared.kept = ids[0];
        await Promise.all(drop.flatMap((id) => (id ? [deleteFile(gw.url, id)] : [])));
      },
    ),
    side(relay.pid, () => uploadFile(relay.url, size), removeObjects),
    side(
      undefined,
      async () => {
        const key = `direct-${n++}`;
        await directUpload(shared, key, size, ctx.options);
        return key;
      },
      removeObjects,
    ),
  ]);
  return { gateway: gateway!, relay: viaRelay!, direct: direct! };
}

/** One timed upload of `size` through the gateway; the previous run's file (if any) is deleted after. */
export async function timedUpload(
  gw: GatewayProcess,
  size: number,
  previous: string | undefined,
): Promise<{ id: string; mibPerSecond: number }> {
  let id = '';
  const mibPerSecond = await timedMibps(size, async () => (id = await uploadFile(gw.url, size)));
  if (previous) await deleteFile(gw.url, previous);
  return { id, mibPerSecond };
}

/** The baseline of the S3 upload figures: lib-storage straight to the bucket, with the gateway's part size and queue depth. */
export async function directUpload(
  s3: S3Bucket,
  key: string,
  size: number,
  { partSize, queueSize }: { partSize: number; queueSize: number },
): Promise<void> {
  const upload = new Upload({
    client: s3.target.client,
    params: { Bucket: s3.bucket, Key: key, Body: await patternStream(size), ContentType: 'application/octet-stream' },
    partSize,
    queueSize,
    leavePartsOnError: false,
  });
  await upload.done();
}

export async function directDownload(s3: S3Bucket, key: string, size: number): Promise<void> {
  const res = await s3.target.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  const sink = discard();
  await pipeline(res.Body as Readable, sink);
  if (sink.bytes !== size) throw new Error(`GetObject ${key}: ${sink.bytes} of ${size} bytes`);
}

export const deleteObject = (s3: S3Bucket, key: string) =>
  s3.target.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: key }));
