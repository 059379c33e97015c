import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileRecord } from '../../src/catalog/catalog.js';
import { PostgresCatalog } from '../../src/catalog/postgres-catalog.js';
import { FILE_OBJECT, toFileObject } from '../../src/api/wire.js';
import { fileObjectSchema } from '../../src/api/schemas.js';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';
import { postgresForFile } from '../helpers/catalog.js';

// A list page is JSON text the catalog rendered (SQLite in SQL, PostgreSQL from the values it
// sends), written past fastify's serialiser. These tests hold it to the bytes the serialiser writes
// for retrieves, on both catalogs, over real sockets.
const postgres = postgresForFile();

const catalogs = {
  sqlite: undefined,
  postgres: async () => {
    const url = await postgres.freshDatabase();
    return () => new PostgresCatalog({ url, poolSize: 2 });
  },
};

const queries = [
  '',
  '?order=asc',
  '?limit=2',
  '?limit=2&order=asc',
  '?purpose=batch',
  '?purpose=assistants&order=asc&limit=1',
  '?purpose=vision',
];

describe.each(Object.entries(catalogs))('List pages rendered by the %s catalog', (_, makeCatalog) => {
  let gw: Gateway;
  const retrieved = new Map<string, unknown>();
  beforeAll(async () => {
    gw = await startGateway({ catalog: await makeCatalog?.() });
    const names = [
      'plain.txt',
      'quote " and \\ backslash.txt',
      "it's.txt",
      'naïve 📄.pdf',
      'line\u2028sep\u2029.txt',
      '\ufeffbom.txt',
      'x'.repeat(200),
    ];
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

  it('writes the list object as JSON.stringify writes it, with the retrieved file objects and a JSON content type', async () => {
    const ids = [...retrieved.keys()];
    for (const query of [...queries, `?after=${ids[2]}`, `?after=${ids[2]}&order=asc&limit=3`]) {
      const res = await request(`${gw.url}/v1/files${query}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      const body = res.body.toString('utf8');
      const { data, has_more } = JSON.parse(body) as { data: { id: string }[]; has_more: boolean };
      const expected = {
        object: 'list',
        data: data.map((f) => retrieved.get(f.id)),
        first_id: data[0]?.id ?? '',
        last_id: data.at(-1)?.id ?? '',
        has_more,
      };
      expect(body, query).toBe(JSON.stringify(expected));
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    }
    // The pages were not trivially short: every file, and has_more where the limit cut.
    expect((await request(`${gw.url}/v1/files`)).json().data).toHaveLength(retrieved.size);
    expect((await request(`${gw.url}/v1/files?limit=2`)).json().has_more).toBe(true);
  });
});

describe('List pages on SQLite and PostgreSQL', () => {
  it('are the same bytes for the same rows, whatever the rows hold', async () => {
    const [sqlite, postgres] = await Promise.all([
      startGateway(),
      catalogs.postgres().then((catalog) => startGateway({ catalog })),
    ]);
    try {
      // Rows no upload could make (control characters, the separator PostgreSQL's pages use, NULL
      // and huge integers), written into both catalogs directly.
      const names = ['a\u0001b', '\u0001', 'tab\tnew\nline', '"\\', 'naïve 📄', '\u2028', 'x'.repeat(1000)];
      const rows: FileRecord[] = names.map((filename, i) => ({
        id: `file-${String(i).padStart(3, '0')}${i === 3 ? '\u0001' : ''}`,
        tenant: '',
        filename,
        purpose: i % 2 ? 'batch' : 'assistants',
        bytes: i === 4 ? 2 ** 52 : i,
        createdAt: 1_700_000_000 + (i % 3),
        expiresAt: i % 2 ? null : 1_900_000_000 + i,
      }));
      for (const gw of [sqlite, postgres]) for (const r of rows) await gw.catalog.upsert(r);
      for (const query of [...queries, '?after=file-002&limit=3', '?after=file-002&order=asc']) {
        const [a, b] = await Promise.all([sqlite, postgres].map((gw) => request(`${gw.url}/v1/files${query}`)));
        const body = a!.body.toString('utf8');
        expect(b!.body.toString('utf8'), query).toBe(body);
        // And JSON.stringify of the file objects a retrieve would answer, in the page's order.
        const { data, has_more } = JSON.parse(body) as { data: { id: string }[]; has_more: boolean };
        const objects = data.map((f) => toFileObject(rows.find((r) => r.id === f.id)!));
        expect(body, query).toBe(
          JSON.stringify({
            object: 'list',
            data: objects,
            first_id: data[0]?.id ?? '',
            last_id: data.at(-1)?.id ?? '',
            has_more,
          }),
        );
      }
      expect((await request(`${postgres.url}/v1/files`)).json().data).toHaveLength(rows.length);
    } finally {
      await Promise.all([sqlite.close(), postgres.close()]);
    }
  });
});

it("declares the file object with the schema's properties, in its order", () => {
  expect(FILE_OBJECT.map(([key]) => key)).toEqual(Object.keys(fileObjectSchema.properties));
});
