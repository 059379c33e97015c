/**
 * The S3 store over https: a TLS terminator with a self-signed certificate in front of the test S3
 * server, trusted through FILES_S3_CA_FILE, or not checked with FILES_S3_TLS_VERIFY=false. Both of
 * the client's paths go through it: node:http's agent (uploads, HEAD, tags) and the GetObject reader.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobNotFoundError } from '../../src/errors.js';
import { S3BlobStore } from '../../src/storage/s3-store.js';
import { collect, deterministicBytes } from '../helpers/bytes.js';
import { createTestBucket, MiB, type TestBucket } from '../helpers/s3.js';
import { newFileId } from '../../src/files/ids.js';

/** Blob ids are file ids as the gateway mints them. */
const fileId = (): string => newFileId(Date.now());

describe('S3BlobStore over https', () => {
  let dir: string;
  let terminator: tls.Server;
  let endpoint: string;
  let caFile: string;
  let bucket: TestBucket;
  const handshakes: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 's3-tls-'));
    caFile = path.join(dir, 'cert.pem');
    // prettier-ignore
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        caFile,
        '-days',
        '2',
        '-subj',
        '/CN=files-gateway-test',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    bucket = await createTestBucket({ label: 's3tls' });
    const upstream = new URL(bucket.server.endpoint);
    terminator = tls.createServer(
      { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(caFile) },
      (secure) => {
        const plain = net.connect(Number(upstream.port), upstream.hostname);
        secure.pipe(plain).pipe(secure);
        secure.on('error', () => plain.destroy());
        plain.on('error', () => secure.destroy());
      },
    );
    terminator.on('secureConnection', () => handshakes.push('ok'));
    terminator.on('tlsClientError', (err) => handshakes.push(err.message));
    await new Promise<void>((resolve) => terminator.listen(0, '127.0.0.1', resolve));
    endpoint = `https://127.0.0.1:${(terminator.address() as net.AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => terminator?.close(resolve));
    await bucket?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('trusts a CA file: uploads, whole and ranged downloads on one kept connection, a missing object', async () => {
    const store = new S3BlobStore(bucket.config({ endpoint, caFile }));
    await store.init();
    const bytes = await deterministicBytes(6 * MiB, 'tls');
    const id = fileId();
    await store.put(id, Readable.from([bytes]));
    const before = handshakes.length;
    const whole = await store.get(id);
    expect((await collect(whole.stream)).equals(bytes)).toBe(true);
    const part = await store.get(id, { start: 1000, end: 1999 });
    expect((await collect(part.stream)).equals(bytes.subarray(1000, 2000))).toBe(true);
    // the second read reused the first one's TLS connection
    expect(handshakes.slice(before)).toEqual(['ok']);
    await expect(store.get(fileId())).rejects.toBeInstanceOf(BlobNotFoundError);
    await store.delete(id);
    await store.close();
  });

  it('reads without checking the certificate when TLS verification is off', async () => {
    const store = new S3BlobStore(bucket.config({ endpoint, tlsVerify: false }));
    await store.init();
    const id = fileId();
    await store.put(id, Readable.from([Buffer.from('unverified')]));
    expect((await collect((await store.get(id)).stream)).toString()).toBe('unverified');
    await store.delete(id);
    await store.close();
  });

  it('refuses a certificate it does not trust, on both paths', async () => {
    const store = new S3BlobStore(bucket.config({ endpoint }));
    await expect(store.init()).rejects.toThrow(/self[- ]signed certificate|cannot check bucket/i);
    await expect(store.get(fileId())).rejects.toThrow(/self[- ]signed certificate/i);
    await store.close();
  });
});
