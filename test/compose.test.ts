import fs from 'node:fs/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { compose, withPorts } from '../src/compose.js';
import { loadConfig } from '../src/config.js';
import { SqliteCatalog } from '../src/catalog/sqlite-catalog.js';
import { FsBlobStore } from '../src/storage/fs-store.js';
import { tempDir } from './helpers/gateway.js';

describe('the composition root', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const undo of cleanup.splice(0).reverse()) await undo();
  });
  const setup = async () => {
    const dir = await tempDir('files-gateway-compose-');
    cleanup.push(() => fs.rm(dir, { recursive: true, force: true }));
    const config = loadConfig({ FILES_DATA_DIR: dir, FILES_MAX_UPLOAD_BYTES: '3000', FILES_MAX_PART_BYTES: '300' });
    const store = new FsBlobStore(config.dataDir);
    const catalog = new SqliteCatalog(`${dir}/catalog.sqlite`);
    // The spies record the order of closing and leave the ports open, so one pair serves several runs.
    cleanup.push(store.close.bind(store), catalog.close.bind(catalog));
    const closed: string[] = [];
    vi.spyOn(store, 'close').mockImplementation(async () => void closed.push('store'));
    vi.spyOn(catalog, 'close').mockImplementation(async () => void closed.push('catalog'));
    return { config, store, catalog, closed, ports: { store: () => store, catalog: () => catalog } };
  };

  it('withPorts hands over initialised ports and closes the catalog, then the store, when fn resolves or throws', async () => {
    const { config, store, catalog, closed, ports } = await setup();
    await expect(withPorts(config, async (p) => (await p.catalog.stats()).files, ports)).resolves.toBe(0);
    expect(closed).toEqual(['catalog', 'store']);
    await expect(
      withPorts(
        config,
        async (p) => {
          expect(p).toEqual({ store, catalog });
          throw new Error('boom');
        },
        ports,
      ),
    ).rejects.toThrow('boom');
    expect(closed).toEqual(['catalog', 'store', 'catalog', 'store']);
  });

  it('withPorts closes both ports when one fails to initialise, and reports that failure', async () => {
    const { config, catalog, closed, ports } = await setup();
    vi.spyOn(catalog, 'init').mockRejectedValue(new Error('catalog unavailable'));
    const fn = vi.fn();
    await expect(withPorts(config, fn, ports)).rejects.toThrow('catalog unavailable');
    expect(fn).not.toHaveBeenCalled();
    expect(closed).toEqual(['catalog', 'store']);
  });

  it('compose gives the FileService and the app the limits of the configuration, and close() stops everything in order', async () => {
    const { config, closed, ports } = await setup();
    const gw = await compose(config, { ...ports, log: pino({ level: 'silent' }) });
    const res = await gw.app.inject({
      method: 'POST',
      url: '/v1/uploads',
      payload: { filename: 'a.txt', purpose: 'assistants', bytes: 3001, mime_type: 'text/plain' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('upload_too_large');
    const info = await gw.app.inject({ method: 'GET', url: '/v1/files-gateway/info' });
    expect(info.json()).toMatchObject({ store: 'fs', s3: null, max_file_bytes: config.maxFileBytes });
    const stop = vi.spyOn(gw.files, 'stop');
    await gw.close();
    expect(stop).toHaveBeenCalledOnce();
    expect(closed).toEqual(['catalog', 'store']);
  });
});
