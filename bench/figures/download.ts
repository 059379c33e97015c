import { curlDownload, downloadDiscard, uploadFile } from '../lib/http.js';
import { MiB, interleaved, timedMibps } from '../lib/stats.js';
import { compareAccounted, log, transferFigures, type FigureModule } from './figure.js';
import { accounted, directDownload } from './transfers.js';

/**
 * Download through the gateway from S3 against GetObject of the same object and against the
 * minimal relay sending it, by node:http, and through the gateway against GetObject by curl. The
 * object is the one the upload runs left, or one uploaded now without the upload figure.
 */
export const download: FigureModule = {
  name: 'download',
  uses: ['s3', 's3-gateway', 'relay'],
  async measure(ctx) {
    const { runs, size } = ctx.options;
    const shared = await ctx.s3Gateway();
    const relay = await ctx.relay();
    const { gw } = shared;
    // the gateway's object key is the file id, which the relay serves as its own
    shared.kept ??= await uploadFile(gw.url, size);
    const id = shared.kept;
    log(`download: ${runs} x ${size / MiB} MiB, the same object every way, by node:http and by curl`);
    const { url: directUrl, curlArgs } = shared.target.curlGetObject(shared.bucket, id);
    const content = (server: { url: string }) => `${server.url}/v1/files/${id}/content`;
    const byNode = (server: { url: string; pid: number }) => () =>
      accounted(server.pid, size, () => timedMibps(size, () => downloadDiscard(content(server), size)));
    // The same client every way: node:http in this process (the SDK's GetObject stream is the
    // target's baseline), and, as a reference, curl in a process of its own, which takes less of
    // the cores that RGW and the gateway share (against RGW it has been faster than the SDK in
    // some runs and no faster in others).
    const [gateway, viaRelay, direct, byCurl, directByCurl] = await interleaved(runs, [
      byNode(gw),
      byNode(relay),
      () => accounted(undefined, size, () => timedMibps(size, () => directDownload(shared, id, size))),
      () => accounted(gw.pid, size, () => curlDownload(content(gw), size)),
      () => accounted(undefined, size, () => curlDownload(directUrl, size, curlArgs)),
    ]);
    return [
      ...transferFigures(
        `download ${size / MiB} MiB`,
        { gateway: gateway!, relay: viaRelay!, direct: direct! },
        'direct GetObject',
        0.95,
        { max: 0.5 },
      ),
      compareAccounted(`download ${size / MiB} MiB, both by curl`, byCurl!, 'GetObject by curl', directByCurl!),
    ];
  },
};
