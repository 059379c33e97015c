import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Catalog } from '../../src/catalog/catalog.js';
import { FileService } from '../../src/files/file-service.js';
import { GatewayMetrics } from '../../src/metrics.js';
import { FILE_OBJECT } from '../../src/api/wire.js';
import { fileObjectSchema } from '../../src/api/schemas.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';

/** The same catalog without its optional listRendered, as PostgreSQL is. */
const withoutRendering = (catalog: Catalog): Catalog =>
  new Proxy(catalog, { get: (target, prop, receiver) => (prop === 'listRendered' ? undefined : Reflect.get(target, prop, receiver)) });

// On SQLite a list page is JSON text the catalog rendered, sent past fastify's serialiser. These
// tests hold it to the bytes the serialiser writes for retrieves and for catalogs that do not render.
describe('List pages rendered by the catalog', () => {
  let gw: Gateway;
  const retrieved = new Map<string, unknown>();
  beforeAll(async () => {
    gw = await startGateway();
    const names = ['plain.txt', 'quote " and \\ backslash.txt', "it's.txt", 'naïve 📄.pdf', 'line\u2028sep\u2029.txt', '\ufeffbom.txt', 'x'.repeat(200)];
    for (const [i, name] of names.entries()) {
      const purpose = i % 2 ? 'batch' : 'assistants';
      const { id } = (await upload(gw.url, [{ name: 'purpose', value: purpose }, filePart(`body ${i}`, name)])).json();
      // Retrieve answers go through fastify's serialiser and the FileObject schema.
      retrieved.set(id, (await request(`${gw.url}/v1/files/${id}`)).json());
    }
  });
  afterAll(async () => {
    await gw?.close();
  });

  const queries = ['', '?order=asc', '?limit=2', '?limit=2&order=asc', '?purpose=batch', '?purpose=assistants&order=asc&limit=1', '?purpose=vision'];

  it('writes the list object as JSON.stringify writes it, with the retrieved file objects and a JSON content type', async () => {
    expect(gw.files.rendersLists).toBe(true);
    for (const query of queries) {
      const res = await request(`${gw.url}/v1/files${query}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      const body = res.body.toString('utf8');
      const { data, has_more } = JSON.parse(body) as { data: { id: string }[]; has_more: boolean };
      const expected = { object: 'list', data: data.map((f) => retrieved.get(f.id)), first_id: data[0]?.id ?? '', last_id: data.at(-1)?.id ?? '', has_more };
      expect(body, query).toBe(JSON.stringify(expected));
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    }
    // The pages were not trivially short: every file, and has_more where the limit cut.
    expect((await request(`${gw.url}/v1/files`)).json().data).toHaveLength(retrieved.size);
    expect((await request(`${gw.url}/v1/files?limit=2`)).json().has_more).toBe(true);
  });

  it('answers with the same bytes as a gateway whose catalog does not render', async () => {
    const log = pino({ level: 'silent' });
    const files = new FileService({ store: gw.store, catalog: withoutRendering(gw.catalog), maxFileBytes: 1, log });
    expect(files.rendersLists).toBe(false);
    const app = await buildApp({ files, logger: log, metrics: new GatewayMetrics({ version: 'test' }) });
    try {
      for (const query of [...queries, `?after=${[...retrieved.keys()][2]}`, `?after=${[...retrieved.keys()][2]}&order=asc&limit=3`]) {
        const plain = await app.inject({ url: `/v1/files${query}` });
        expect(plain.statusCode).toBe(200);
        expect((await request(`${gw.url}/v1/files${query}`)).body.toString('utf8'), query).toBe(plain.body);
      }
    } finally {
      await app.close();
    }
  });

  it("declares the file object with the schema's properties, in its order", () => {
    expect(FILE_OBJECT.map(([key]) => key)).toEqual(Object.keys(fileObjectSchema.properties));
  });
});
