import { MiB } from '../lib/stats.js';
import { log, transferFigures, type FigureModule } from './figure.js';
import { uploadSides } from './transfers.js';

/**
 * `concurrent` uploads at once through the shared S3 gateway, through the minimal relay and by
 * lib-storage straight to the bucket, interleaved.
 */
export const concurrent: FigureModule = {
  name: 'concurrent',
  uses: ['s3', 's3-gateway', 'relay'],
  async measure(ctx) {
    const { runs, concurrent: count, concurrentSize } = ctx.options;
    // the upload runs' file goes first, and RGW reclaims it
    await (await ctx.s3Gateway()).settle();
    log(`concurrent: ${runs} x ${count} uploads of ${concurrentSize / MiB} MiB`);
    const sides = await uploadSides(ctx, count, concurrentSize, false);
    return transferFigures(
      `${count} concurrent uploads of ${concurrentSize / MiB} MiB`,
      sides,
      'direct lib-storage',
      0.9,
      { max: 2, maxRatio: 0.5 },
    );
  },
};
