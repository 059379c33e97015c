import { idleRss, sampleRss } from '../lib/gateway-process.js';
import { deleteFile, downloadDiscard, uploadFile } from '../lib/http.js';
import { MiB } from '../lib/stats.js';
import { judge, log, type FigureModule } from './figure.js';

/** Peak RSS growth over idle while a `big` file goes up and comes back down, a fresh gateway per run. */
export const rss: FigureModule = {
  name: 'rss',
  uses: ['s3'],
  async measure(ctx) {
    const { runs, big } = ctx.options;
    const s3 = await ctx.s3();
    log(`rss: ${runs} x ${big / MiB} MiB up and down, VmRSS sampled every 50 ms`);
    const growth: number[] = [];
    const detail: Record<string, number>[] = [];
    for (let i = 0; i < runs; i++) {
      const gw = await ctx.gateway('rss', s3.target.gatewayEnv(s3.bucket));
      try {
        // idle means warmed up (code loaded, sockets open), so what is left is what the size costs
        const warm = await uploadFile(gw.url, 16 * MiB);
        await downloadDiscard(`${gw.url}/v1/files/${warm}/content`, 16 * MiB);
        await deleteFile(gw.url, warm);
        const idle = await idleRss(gw.pid);
        let sampler = sampleRss(gw.pid);
        const id = await uploadFile(gw.url, big);
        const up = sampler.stop();
        sampler = sampleRss(gw.pid);
        await downloadDiscard(`${gw.url}/v1/files/${id}/content`, big);
        const down = sampler.stop();
        await deleteFile(gw.url, id);
        await s3.target.collectGarbage();
        const grew = (Math.max(up.peak, up.hwm ?? 0, down.peak, down.hwm ?? 0) - idle) / MiB;
        growth.push(grew);
        detail.push({
          idleMiB: idle / MiB,
          uploadPeakMiB: up.peak / MiB,
          uploadHwmMiB: (up.hwm ?? NaN) / MiB,
          downloadPeakMiB: down.peak / MiB,
          downloadHwmMiB: (down.hwm ?? NaN) / MiB,
          samples: up.samples + down.samples,
        });
        log(
          `rss run ${i + 1}: idle ${(idle / MiB).toFixed(0)} MiB, upload peak ${(up.peak / MiB).toFixed(0)}, download peak ${(down.peak / MiB).toFixed(0)}, growth ${grew.toFixed(0)} MiB`,
        );
      } finally {
        await gw.stop();
      }
    }
    const figure = judge(`peak RSS growth, ${big / MiB} MiB up+down`, 'MiB', growth, { max: 128, everyRun: true });
    figure.detail = { runs: detail };
    return [figure];
  },
};
