import { deleteFile } from '../lib/http.js';
import { MiB, mibps, sideBySide, timed } from '../lib/stats.js';
import type { BenchContext, S3Gateway } from './context.js';
import { compareAccounted, log, type FigureModule } from './figure.js';
import { accounted, deleteObject, directUpload, timedUpload, type Transfer } from './transfers.js';

/**
 * `runs` uploads of `size` through the shared S3 gateway against lib-storage straight to the
 * bucket, side by side. The last gateway upload stays, as `shared.kept`, for the download figures.
 */
export async function uploadRuns(ctx: BenchContext, shared: S3Gateway): Promise<{ a: Transfer[]; b: Transfer[] }> {
  const { runs, size, partSize, queueSize } = ctx.options;
  const { gw, target } = shared;
  log(`upload: ${runs} x ${size / MiB} MiB, part size ${partSize / MiB} MiB, queue ${queueSize}`);
  let n = 0;
  return sideBySide(
    runs,
    async () => {
      const previous = shared.kept;
      const transfer = await accounted(gw, size, async () => {
        const { id, mibPerSecond } = await timedUpload(gw, size, undefined);
        shared.kept = id;
        return mibPerSecond;
      });
      if (previous) await deleteFile(gw.url, previous);
      await target.collectGarbage();
      return transfer;
    },
    async () => {
      const key = `direct-${n++}`;
      const transfer = await accounted(gw, size, async () =>
        mibps(size, await timed(() => directUpload(shared, key, size, ctx.options))),
      );
      await deleteObject(shared, key);
      await target.collectGarbage();
      return transfer;
    },
  );
}

/** Upload through the gateway to S3 against a direct lib-storage upload of the same bytes. */
export const upload: FigureModule = {
  name: 'upload',
  uses: ['s3', 's3-gateway'],
  async measure(ctx) {
    const runs = await uploadRuns(ctx, await ctx.s3Gateway());
    return [compareAccounted(`upload ${ctx.options.size / MiB} MiB`, runs.a, 'direct lib-storage', runs.b, 0.9)];
  },
};
