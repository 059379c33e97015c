import { DeleteObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';

// No vitest import here: the benchmarks share this outside the test runner.
/** Delete every (current) object of an unversioned bucket, page by page. */
export async function deleteAllObjects(client: S3Client, bucket: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }));
    token = page.NextContinuationToken;
  } while (token);
}
