/**
 * The HTTP ceiling for the fs figures: a bare node:http server (no framework, no multipart parser,
 * no catalog) that writes a POST body as it arrives (multipart framing and all) to a file in the
 * folder named on stdin, answers {"bytes": size}, and streams that file back on GET, with the fs
 * store's batched writes and read size. Prints {"address": ...} once listening. What the gateway
 * adds on top of moving the same bytes over HTTP is the difference.
 */
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BatchedFileWriter } from '../../src/storage/batched-file-writer.js';
import { READ_CHUNK_BYTES } from '../../src/storage/fs-store.js';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const file = path.join((JSON.parse(input) as { dir: string }).dir, 'bare-http.bin');

const server = http.createServer((req, res) => {
  if (req.method === 'POST') {
    rm(file, { force: true })
      .then(() => pipeline(req, new BatchedFileWriter(file)))
      .then(() => stat(file))
      .then(
        ({ size }) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes: size })),
        () => res.writeHead(500).end(),
      );
  } else {
    pipeline(createReadStream(file, { highWaterMark: READ_CHUNK_BYTES }), res).catch(() => res.destroy());
  }
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ address: `http://127.0.0.1:${port}` })}\n`);
});
process.once('SIGTERM', () => server.close());
