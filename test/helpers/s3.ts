import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import type { S3Config } from '../../src/config.js';
import { deleteAllObjects } from './s3-cleanup.js';
import type { S3TestServer } from '../global-setup.js';

export const MiB = 1024 * 1024;

export interface TestBucket {
  server: S3TestServer;
  /** A store config for this bucket; override fields per store (prefix, part size...). */
  config(overrides?: Partial<S3Config>): S3Config;
  /** Raw client for assertions behind the store's back. */
  client: S3Client;
  /** Multipart uploads still open under `prefix` (s3rver cannot list them: undefined there). */
  pendingUploads(prefix?: string): Promise<number | undefined>;
  /** Empty and remove the bucket (memstore keeps every byte in RAM), then close the client. */
  destroy(): Promise<void>;
}

export function s3Server(): S3TestServer {
  return inject('s3');
}

export function rawClient(server: S3TestServer = s3Server()): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A bucket name no other test file (or earlier run) uses. */
export function uniqueBucketName(label = 't'): string {
  return `${label}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`.toLowerCase();
}

export function s3Config(server: S3TestServer, bucket: string, overrides: Partial<S3Config> = {}): S3Config {
  return {
    bucket,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    tlsVerify: true,
    caFile: undefined,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    prefix: '',
    autoCreateBucket: false,
    partSizeBytes: 5 * MiB,
    queueSize: 4,
    maxPartsInFlight: 6,
    signPayload: true,
    ...overrides,
  };
}

export async function createTestBucket(options: { versioning?: boolean; label?: string } = {}): Promise<TestBucket> {
  const server = s3Server();
  const client = rawClient(server);
  const bucket = uniqueBucketName(options.label);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  if (options.versioning) {
    await client.send(
      new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    );
  }
  return {
    server,
    client,
    config: (overrides) => s3Config(server, bucket, overrides),
    async pendingUploads(prefix) {
      if (server.backend === 's3rver') return undefined;
      const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return res.Uploads?.length ?? 0;
    },
    async destroy() {
      if (server.backend === 'rgw') {
        const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        for (const u of uploads.Uploads ?? []) {
          await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }));
        }
      }
      if (options.versioning) {
        const versions = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
        for (const v of [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])]) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: v.Key, VersionId: v.VersionId }));
        }
      } else {
        await deleteAllObjects(client, bucket);
      }
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      client.destroy();
    },
  };
}
