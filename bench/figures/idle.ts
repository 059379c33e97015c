import { setTimeout as sleep } from 'node:timers/promises';
import { idleRss } from '../lib/gateway-process.js';
import { deleteFile, downloadDiscard, uploadFile } from '../lib/http.js';
import { MiB } from '../lib/stats.js';
import { judge, log, type FigureModule, type Target } from './figure.js';
import { smallLoad, smallUpload } from './small.js';

/**
 * Whether the memory a load takes comes back: a fresh gateway on a bucket of its own, its idle
 * RSS (median VmRSS over a second) before any request; then two files of `size` up and down at
 * once, then `smallSeconds` of the small figure's 64 KiB uploads, then `idleSeconds` of nothing,
 * idle RSS after each. The target: after the idle, at most 64 MiB above before any load.
 */
export const idle: FigureModule = {
  name: 'idle',
  uses: ['s3'],
  async measure(ctx) {
    const { size, smallSeconds, idleSeconds } = ctx.options;
    log(`idle: 2 x ${size / MiB} MiB up and down, ${smallSeconds} s of 64 KiB uploads, ${idleSeconds} s idle`);
    return ctx.onOwnBucket('idle', async (gw) => {
      const readings: [string, number][] = [['before any load', await idleRss(gw.pid)]];
      const reading = async (what: string) => readings.push([what, await idleRss(gw.pid)]);
      await Promise.all(
        [0, 1].map(async () => {
          const id = await uploadFile(gw.url, size);
          await downloadDiscard(`${gw.url}/v1/files/${id}/content`, size);
          await deleteFile(gw.url, id);
        }),
      );
      await reading(`after 2 x ${size / MiB} MiB up and down`);
      await smallLoad(ctx, gw.pid, `${gw.url}/v1/files`, await smallUpload(ctx), { seconds: smallSeconds });
      await reading(`after ${smallSeconds} s of 64 KiB uploads`);
      await sleep(idleSeconds * 1000);
      await reading(`after ${idleSeconds} s idle`);
      const before = readings[0]![1] / MiB;
      log(`idle RSS: ${readings.map(([what, bytes]) => `${what} ${(bytes / MiB).toFixed(0)} MiB`).join(', ')}`);
      return readings.slice(1).map(([what, bytes], i, after) => {
        const target: Target = i === after.length - 1 ? { maxOver: 64 } : {};
        return judge(`idle RSS ${what}`, 'MiB', [bytes / MiB], target, { name: 'before any load', runs: [before] });
      });
    });
  },
};
