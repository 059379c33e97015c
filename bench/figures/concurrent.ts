import { deleteFile, uploadFile } from '../lib/http.js';
import { MiB, mibps, sideBySide, timed } from '../lib/stats.js';
import { compareAccounted, log, type FigureModule } from './figure.js';
import { accounted, deleteObject, directUpload } from './transfers.js';

/** `concurrent` uploads at once through the shared S3 gateway against as many direct lib-storage uploads. */
export const concurrent: FigureModule = {
  name: 'concurrent',
  uses: ['s3', 's3-gateway'],
  async measure(ctx) {
    const { runs, concurrent: count, concurrentSize } = ctx.options;
    const shared = await ctx.s3Gateway();
    // the upload runs' file goes first, and RGW reclaims it
    await shared.settle();
    const { gw, target } = shared;
    const total = count * concurrentSize;
    log(`concurrent: ${runs} x ${count} uploads of ${concurrentSize / MiB} MiB`);
    const indices = Array.from({ length: count }, (_, i) => i);
    const sides = await sideBySide(
      runs,
      async () => {
        let ids: string[] = [];
        const transfer = await accounted(gw, total, async () =>
          mibps(
            total,
            await timed(async () => (ids = await Promise.all(indices.map(() => uploadFile(gw.url, concurrentSize))))),
          ),
        );
        await Promise.all(ids.map((id) => deleteFile(gw.url, id)));
        await target.collectGarbage();
        return transfer;
      },
      async () => {
        const transfer = await accounted(gw, total, async () =>
          mibps(
            total,
            await timed(() =>
              Promise.all(indices.map((i) => directUpload(shared, `concurrent-${i}`, concurrentSize, ctx.options))),
            ),
          ),
        );
        await Promise.all(indices.map((i) => deleteObject(shared, `concurrent-${i}`)));
        await target.collectGarbage();
        return transfer;
      },
    );
    return [
      compareAccounted(
        `${count} concurrent uploads of ${concurrentSize / MiB} MiB`,
        sides.a,
        'direct lib-storage',
        sides.b,
        0.9,
      ),
    ];
  },
};
