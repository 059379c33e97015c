import { curlDownload, downloadDiscard } from '../lib/http.js';
import { MiB, interleaved, mibps, timed } from '../lib/stats.js';
import { compareAccounted, log, type FigureModule } from './figure.js';
import { accounted, directDownload } from './transfers.js';
import { uploadRuns } from './upload.js';

/**
 * Download through the gateway from S3 against GetObject of the same object, by node:http and by
 * curl. The object is the one the upload runs left; without the upload figure, they run unrecorded.
 */
export const download: FigureModule = {
  name: 'download',
  uses: ['s3', 's3-gateway'],
  async measure(ctx) {
    const { runs, size } = ctx.options;
    const shared = await ctx.s3Gateway();
    if (!shared.kept) await uploadRuns(ctx, shared);
    const id = shared.kept;
    if (!id) return [];
    const { gw } = shared;
    log(`download: ${runs} x ${size / MiB} MiB, the same object both ways, by curl and by node:http`);
    const { url: directUrl, curlArgs } = shared.target.curlGetObject(shared.bucket, id);
    // The same client both ways: node:http in this process (the SDK's GetObject stream is the
    // target's baseline), and, as a reference, curl in a process of its own, which takes less of
    // the cores that RGW and the gateway share (against RGW it has been faster than the SDK in
    // some runs and no faster in others).
    const [byNode, directByNode, byCurl, directByCurl] = await interleaved(runs, [
      () =>
        accounted(gw, size, async () =>
          mibps(size, await timed(() => downloadDiscard(`${gw.url}/v1/files/${id}/content`, size))),
        ),
      () => accounted(gw, size, async () => mibps(size, await timed(() => directDownload(shared, id, size)))),
      () => accounted(gw, size, () => curlDownload(`${gw.url}/v1/files/${id}/content`, size)),
      () => accounted(gw, size, () => curlDownload(directUrl, size, curlArgs)),
    ]);
    return [
      compareAccounted(`download ${size / MiB} MiB`, byNode!, 'direct GetObject', directByNode!, 0.95),
      compareAccounted(`download ${size / MiB} MiB, both by curl`, byCurl!, 'GetObject by curl', directByCurl!),
    ];
  },
};
