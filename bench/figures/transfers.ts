import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { discard, patternStream } from '../lib/bytes.js';
import { machineBusySeconds, processUsage } from '../lib/cpu.js';
import type { GatewayProcess } from '../lib/gateway-process.js';
import { deleteFile, uploadFile } from '../lib/http.js';
import { MiB, mibps, timed } from '../lib/stats.js';
import type { S3Bucket } from './context.js';

/** One transfer: its throughput, and CPU seconds per GiB of the whole machine and of the gateway. */
export interface Transfer {
  mibps: number;
  machineCpu: number;
  gatewayCpu: number;
}

export async function accounted(gw: GatewayProcess, bytes: number, transfer: () => Promise<number>): Promise<Transfer> {
  const machine = machineBusySeconds();
  const own = processUsage(gw.pid).cpuSeconds;
  const rate = await transfer();
  const gib = bytes / (1024 * MiB);
  return {
    mibps: rate,
    machineCpu: (machineBusySeconds() - machine) / gib,
    gatewayCpu: (processUsage(gw.pid).cpuSeconds - own) / gib,
  };
}

/** One timed upload of `size` through the gateway; the previous run's file (if any) is deleted after. */
export async function timedUpload(
  gw: GatewayProcess,
  size: number,
  previous: string | undefined,
): Promise<{ id: string; mibPerSecond: number }> {
  let id = '';
  const seconds = await timed(async () => (id = await uploadFile(gw.url, size)));
  if (previous) await deleteFile(gw.url, previous);
  return { id, mibPerSecond: mibps(size, seconds) };
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
