import { MiB } from '../lib/stats.js';
import { log, transferFigures, type FigureModule } from './figure.js';
import { uploadSides } from './transfers.js';

/**
 * `runs` uploads of `size` through the shared S3 gateway, through the minimal relay and by
 * lib-storage straight to the bucket, interleaved. The last gateway upload stays, as
 * `shared.kept`, for the download figures.
 */
export const upload: FigureModule = {
  name: 'upload',
  uses: ['s3', 's3-gateway', 'relay'],
  async measure(ctx) {
    const { runs, size, partSize, queueSize } = ctx.options;
    log(`upload: ${runs} x ${size / MiB} MiB, part size ${partSize / MiB} MiB, queue ${queueSize}`);
    const sides = await uploadSides(ctx, 1, size, true);
    return transferFigures(`upload ${size / MiB} MiB`, sides, 'direct lib-storage', 0.9, { max: 1.5, maxRatio: 0.5 });
  },
};
