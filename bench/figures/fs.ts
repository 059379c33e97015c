import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { streamingUpload } from '../../test/helpers/stream-upload.js';
import { patternStream } from '../lib/bytes.js';
import { curlDownload, deleteFile } from '../lib/http.js';
import { startBareFileServer } from '../lib/load.js';
import { MiB, interleaved, timedMibps } from '../lib/stats.js';
import { compare, log, type FigureModule } from './figure.js';
import { afterWarmUp, onFresh } from './fresh.js';
import { timedUpload } from './transfers.js';

const execFileAsync = promisify(execFile);

/**
 * The fs store against a bare node:http server moving the same bytes to and from a file over the
 * same loopback HTTP, with the store's batched writes and read size (the target: what any HTTP
 * service here can reach), and, as references, against a plain file copy on the same disk (`cp`;
 * for uploads also the copy flushed to the disk, as the store flushes an upload), interleaved run
 * by run; each server run is a fresh process (onFresh) timed on its second transfer. Downloads are
 * read by curl (see curlDownload), so that the figure is the server's and not the client's.
 */
export const fsStore: FigureModule = {
  name: 'fs',
  uses: [],
  async measure(ctx) {
    const { runs, size } = ctx.options;
    const { tmp } = ctx;
    const startGateway = () => ctx.fsGateway();
    const source = path.join(tmp, 'source.bin');
    const copy = path.join(tmp, 'copy.bin');
    await pipeline(await patternStream(size), createWriteStream(source));
    // `sync` before each timed transfer: the run before can leave a GiB of writeback behind, and on a
    // disk mounted with `discard` the trims of the file it deleted; either would be charged to this one.
    const settled = async <T>(f: () => Promise<T>): Promise<T> => {
      await execFileAsync('sync');
      return f();
    };
    const copyRun = (flushed: boolean) => async () => {
      await fs.rm(copy, { force: true });
      return settled(async () =>
        timedMibps(size, async () => {
          // --reflink=never: a copy-on-write clone (btrfs, XFS) would move no bytes at all.
          await execFileAsync('cp', ['--reflink=never', source, copy]);
          // The store flushes an upload to the disk before answering; cp alone leaves it in the page cache.
          if (flushed) await execFileAsync('sync', ['--data', copy]);
        }),
      );
    };
    const fileCopy = copyRun(false);
    const startBare = () => startBareFileServer(tmp);
    log(`fs: ${runs} x ${size / MiB} MiB through the gateway, a bare node:http server and cp on the same disk`);
    try {
      let kept: string | undefined;
      const [up, upHttp, upCopy, upFlushedCopy] = await interleaved(runs, [
        () =>
          onFresh(startGateway, (gw) =>
            afterWarmUp(() =>
              settled(async () => {
                const { id, mibPerSecond } = await timedUpload(gw, size, kept);
                kept = id;
                return mibPerSecond;
              }),
            ),
          ),
        () =>
          onFresh(startBare, (bare) =>
            afterWarmUp(() =>
              settled(async () =>
                timedMibps(size, async () => {
                  const res = await streamingUpload(bare.url, await patternStream(size), 'bench.bin');
                  if (res.status !== 200 || res.json.bytes < size)
                    throw new Error(`bare upload answered ${res.status}: ${JSON.stringify(res.json)}`);
                }),
              ),
            ),
          ),
        fileCopy,
        copyRun(true),
      ]);
      const figures = [
        compare(`fs upload ${size / MiB} MiB`, 'MiB/s', up!, 'bare node:http to file', upHttp!, 0.95),
        compare(`fs upload ${size / MiB} MiB, against cp`, 'MiB/s', up!, 'cp of the file', upCopy!),
        compare(`fs upload ${size / MiB} MiB, on the disk`, 'MiB/s', up!, 'cp of the file + fdatasync', upFlushedCopy!),
      ];
      const id = kept!;
      const { size: bareSize } = await fs.stat(path.join(tmp, 'bare-http.bin'));
      const [down, downHttp, downCopy] = await interleaved(runs, [
        () =>
          onFresh(startGateway, (gw) =>
            afterWarmUp(() => settled(() => curlDownload(`${gw.url}/v1/files/${id}/content`, size))),
          ),
        () => onFresh(startBare, (bare) => afterWarmUp(() => settled(() => curlDownload(bare.url, bareSize)))),
        fileCopy,
      ]);
      figures.push(
        compare(`fs download ${size / MiB} MiB`, 'MiB/s', down!, 'bare node:http from file', downHttp!, 0.95),
        compare(`fs download ${size / MiB} MiB, against cp`, 'MiB/s', down!, 'cp of the file', downCopy!),
      );
      await onFresh(startGateway, (gw) => deleteFile(gw.url, id));
      return figures;
    } finally {
      for (const file of [source, copy, path.join(tmp, 'bare-http.bin')]) await fs.rm(file, { force: true });
    }
  },
};
