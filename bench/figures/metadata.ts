import { populate } from '../lib/http.js';
import { requestsPerSecond, startBareServer } from '../lib/load.js';
import { sideBySide } from '../lib/stats.js';
import type { BenchContext } from './context.js';
import { compare, log, type Figure, type FigureModule } from './figure.js';
import { onFresh } from './fresh.js';

/** Requests per second over `metaSeconds`, after a load of its own: a fresh process spends its first second compiling. */
async function warmedLoad(ctx: BenchContext, url: string): Promise<number> {
  await requestsPerSecond(url, ctx.options.metaWarmupSeconds);
  return requestsPerSecond(url, ctx.options.metaSeconds);
}

/**
 * Retrieve by id and a list page of 100 from a catalog of `metaFiles` files on the fs store,
 * against a bare fastify route sending the same bodies; fresh processes each run.
 */
export const metadata: FigureModule = {
  name: 'metadata',
  uses: [],
  async measure(ctx) {
    const { runs, metaFiles, metaSeconds } = ctx.options;
    const startGateway = () => ctx.fsGateway();
    log(`metadata: populating ${metaFiles} files`);
    const listRoute = '/v1/files?limit=100';
    const { fileRoute, bodies } = await onFresh(startGateway, async (gw) => {
      const ids = await populate(gw.url, metaFiles);
      const fileRoute = `/v1/files/${ids[Math.floor(ids.length / 2)]}`;
      const body = async (route: string) => (await fetch(`${gw.url}${route}`)).json();
      return { fileRoute, bodies: { file: await body(fileRoute), list: await body(listRoute) } };
    });
    const figures: Figure[] = [];
    for (const [what, gatewayRoute, bareRoute] of [
      ['retrieve by id', fileRoute, '/file'],
      ['list page of 100', listRoute, '/list'],
    ] as const) {
      log(
        `metadata: ${what}, ${runs} x ${metaSeconds} s each side (autocannon, 32 connections), fresh processes each run`,
      );
      const sides = await sideBySide(
        runs,
        () => onFresh(startGateway, (gw) => warmedLoad(ctx, `${gw.url}${gatewayRoute}`)),
        () =>
          onFresh(
            () => startBareServer(bodies),
            (bare) => warmedLoad(ctx, `${bare.url}${bareRoute}`),
          ),
      );
      figures.push(
        compare(`metadata: ${what} (${metaFiles} files)`, 'req/s', sides.a, 'bare fastify route', sides.b, 0.5),
      );
    }
    return figures;
  },
};
