import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CreateBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { deterministicStream } from '../helpers/bytes.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';
import { startRgw, type RgwCluster } from '../helpers/rgw.js';
import { MiB, rawClient, s3Config, s3Server } from '../helpers/s3.js';
import { eventually } from '../helpers/wait.js';
import { streamingDownload, streamingUpload } from '../helpers/stream-upload.js';

// Only where Ceph is installed (the run's shared server says so); the s3rver fallback cannot do this.
const haveRgw = s3Server().backend === 'rgw';

/**
 * RGW stopped and restarted under a running gateway. A private cluster, so stopping RGW cannot
 * disturb the other test files that share the run's S3 server.
 */
describe.skipIf(!haveRgw)('an S3 outage (private RGW cluster)', () => {
  let tmp: string;
  let cluster: RgwCluster;
  let gw: Gateway;
  const errorLog: string[] = [];
  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'files-gateway-outage-'));
    cluster = await startRgw(tmp);
    const client = rawClient(cluster.server);
    await client.send(new CreateBucketCommand({ Bucket: 'outage' }));
    client.destroy();
    // What the gateway logs at error level, to show with a failed expectation on its answers.
    const sink = new Writable({
      write(line: Buffer, _enc, done) {
        errorLog.push(line.toString('utf8'));
        done();
      },
    });
    gw = await startGateway({ s3: s3Config(cluster.server, 'outage'), log: pino({ level: 'error' }, sink) });
  }, 180_000);
  afterAll(async () => {
    await gw?.close();
    await cluster?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('cuts a download cleanly when RGW dies, answers 503 meanwhile, and recovers when it is back', {
    timeout: 120_000,
  }, async () => {
    const size = 64 * MiB;
    const source = deterministicStream(size);
    const big = await streamingUpload(`${gw.url}/v1/files`, source.stream, 'big.bin');
    expect(big.status).toBe(200);
    const small = (await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('small')])).json();

    // A slow reader: take 1 MiB, then stop reading while RGW goes away.
    let received = 0;
    let response: http.IncomingMessage | undefined;
    const cut = new Promise<{ complete: boolean }>((resolve) => {
      http.get(`${gw.url}/v1/files/${big.json.id}/content`, (res) => {
        response = res;
        let pausedOnce = false;
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received >= MiB && !pausedOnce) {
            pausedOnce = true;
            res.pause();
          }
        });
        res.on('error', () => undefined);
        res.on('close', () => resolve({ complete: res.complete }));
      });
    });
    while (received < MiB) await new Promise((r) => setTimeout(r, 10));
    expect(response!.statusCode).toBe(200);
    await cluster.rgwStop();
    // Read on: the rest of the bytes cannot come, so the response must end short, not hang.
    response!.resume();
    const result = await Promise.race([cut, new Promise((r) => setTimeout(() => r('hung'), 60_000))]);
    expect(result).toEqual({ complete: false });
    expect(received).toBeLessThan(size);

    // The gateway keeps serving what does not need S3...
    const listed = await request(`${gw.url}/v1/files`);
    expect(listed.status).toBe(200);
    expect(listed.json().data.map((f: { id: string }) => f.id)).toContain(small.id);
    // ...and says "try again" (503, retryable) for what does.
    const down = await request(`${gw.url}/v1/files/${small.id}/content`);
    expect(down.status).toBe(503);
    expect(down.json().error.type).toBe('service_unavailable');
    expect(down.headers['retry-after']).toBeDefined();
    const failedUpload = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('while down')]);
    expect(failedUpload.status).toBe(503);
    await new Promise((r) => setTimeout(r, 1100)); // past the readiness cache
    const notReady = await request(`${gw.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(notReady.json().problems).toEqual([expect.stringContaining('s3 store')]);

    await cluster.rgwStart();
    await new Promise((r) => setTimeout(r, 1100));
    expect((await request(`${gw.url}/readyz`)).status).toBe(200);
    // Same gateway process, no restart: S3 works again.
    expect((await request(`${gw.url}/v1/files/${small.id}/content`)).body.toString()).toBe('small');
    const again = await streamingDownload(`${gw.url}/v1/files/${big.json.id}/content`);
    expect(again).toEqual({ status: 200, bytes: size, sha256: await source.sha256 });
    // The upload that failed during the outage left no row behind.
    expect((await request(`${gw.url}/v1/files`)).json().data).toHaveLength(2);
  });

  it('fails an upload cleanly when RGW dies mid-stream, and leaves nothing once RGW is back and leftovers are pruned', {
    timeout: 120_000,
  }, async () => {
    const before = (await request(`${gw.url}/v1/files`)).json().data.length;
    // A slow chunked upload: more than a part is sent, so a multipart upload is open, then RGW dies.
    const boundary = 'mid-upload';
    let markStopped!: () => void;
    const stopped = new Promise<void>((r) => (markStopped = r));
    // The gateway may answer 503 and close while the client is still writing: a reset then is the
    // same clean failure seen from the client's side.
    const answer = new Promise<{ status: number; body: string } | { reset: string }>((resolve) => {
      const req = http.request(
        `${gw.url}/v1/files`,
        { method: 'POST', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, body: text }));
        },
      );
      req.on('error', (err) => resolve({ reset: err.message }));
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n`);
      req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n`);
      const chunk = Buffer.alloc(MiB, 9);
      let sent = 0;
      let done = false;
      const pump = () => {
        if (done || sent >= 48) return;
        sent++;
        req.write(chunk, () => setTimeout(pump, 20));
      };
      pump();
      void stopped.then(() => {
        done = true;
        req.end(`\r\n--${boundary}--\r\n`);
      });
    });
    const store = new S3BlobStore(s3Config(cluster.server, 'outage'));
    const pending = async () => {
      const client = rawClient(cluster.server);
      try {
        return (await client.send(new ListMultipartUploadsCommand({ Bucket: 'outage' }))).Uploads?.length ?? 0;
      } finally {
        client.destroy();
      }
    };
    await eventually(async () => (await pending()) > 0, 60_000);
    await cluster.rgwStop();
    markStopped();
    const result = await answer;
    if ('status' in result) {
      expect(result.status, `the gateway's error log:\n${errorLog.join('')}`).toBe(503);
      expect(JSON.parse(result.body).error.type).toBe('service_unavailable');
    }

    await cluster.rgwStart();
    // The abort could not reach RGW while it was down: the upload stays pending until the
    // leftovers are pruned (reindex --prune, or the sweeper after FILES_LEFTOVER_GRACE_SECONDS).
    await store.pruneLeftovers(new Date(Date.now() + 1000));
    expect(await pending()).toBe(0);
    expect((await request(`${gw.url}/v1/files`)).json().data.length).toBe(before);
    await store.close();
  });
});
