import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  ListMultipartUploadsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { startRgw } from '../../test/helpers/rgw.js';
import { deleteAllObjects } from '../../test/helpers/s3-cleanup.js';
import { env } from './env.js';

const run = promisify(execFile);

export interface S3Target {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** 'rgw' when the bench started its own Ceph RGW, else the configured endpoint. */
  kind: 'rgw' | 'external';
  /** A client set up as the gateway sets up its own (keep-alive, 64 sockets, checksums only when required). */
  client: S3Client;
  /** The gateway's FILES_S3_* for `bucket`. */
  gatewayEnv(bucket: string): Record<string, string>;
  /** URL and curl arguments (SigV4) of a GetObject of `key` in `bucket`, path style. */
  curlGetObject(bucket: string, key: string): { url: string; curlArgs: string[] };
  createBucket(bucket: string): Promise<void>;
  /** Abort pending multipart uploads, delete every object and the bucket. */
  removeBucket(bucket: string): Promise<void>;
  /** Reclaim deleted objects now: RGW's memstore holds them in RAM until its garbage collector runs. */
  collectGarbage(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * BENCH_S3_ENDPOINT (with BENCH_S3_ACCESS_KEY_ID, BENCH_S3_SECRET_ACCESS_KEY, BENCH_S3_REGION)
 * points the bench at an existing S3 server on loopback; otherwise it starts a private Ceph RGW
 * (memstore: objects live in RAM, `memoryGiB` caps it) under `tmp`.
 */
export async function openS3Target(tmp: string, memoryGiB: number): Promise<S3Target> {
  const external = env.text('BENCH_S3_ENDPOINT');
  let coords: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  let stopRgw: (() => Promise<void>) | undefined;
  let cephConf: string | undefined;
  if (external) {
    coords = {
      endpoint: external,
      region: env.text('BENCH_S3_REGION') ?? 'us-east-1',
      accessKeyId: env.text('BENCH_S3_ACCESS_KEY_ID') ?? '',
      secretAccessKey: env.text('BENCH_S3_SECRET_ACCESS_KEY') ?? '',
    };
  } else {
    // startRgw passes the environment on to scripts/ceph-rgw.sh
    process.env.CEPH_OSD_SIZE_GB = String(memoryGiB);
    const rgw = await startRgw(tmp);
    coords = rgw.server;
    stopRgw = rgw.stop;
    cephConf = path.join(tmp, 'rgw', 'ceph.conf');
  }
  const client = new S3Client({
    endpoint: coords.endpoint,
    region: coords.region,
    forcePathStyle: true,
    credentials: { accessKeyId: coords.accessKeyId, secretAccessKey: coords.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }),
  });
  return {
    ...coords,
    kind: external ? 'external' : 'rgw',
    client,
    gatewayEnv: (bucket) => ({
      FILES_STORE: 's3',
      FILES_S3_ENDPOINT: coords.endpoint,
      FILES_S3_REGION: coords.region,
      FILES_S3_BUCKET: bucket,
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_ACCESS_KEY_ID: coords.accessKeyId,
      FILES_S3_SECRET_ACCESS_KEY: coords.secretAccessKey,
    }),
    curlGetObject: (bucket, key) => ({
      url: `${coords.endpoint}/${bucket}/${encodeURIComponent(key)}`,
      curlArgs: [
        '--aws-sigv4',
        `aws:amz:${coords.region}:s3`,
        '--user',
        `${coords.accessKeyId}:${coords.secretAccessKey}`,
        // S3 and RGW want the payload's hash signed too; this one is of an empty body.
        '-H',
        'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      ],
    }),
    async createBucket(bucket) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    },
    async removeBucket(bucket) {
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
      }
      await deleteAllObjects(client, bucket);
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
    },
    async collectGarbage() {
      if (cephConf)
        await run('radosgw-admin', ['-c', cephConf, 'gc', 'process', '--include-all'], { timeout: 120_000 });
    },
    async stop() {
      client.destroy();
      await stopRgw?.();
    },
  };
}
