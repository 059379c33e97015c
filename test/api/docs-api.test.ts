import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { request } from '../helpers/http.js';
import { OPENAPI_PATH, openapi } from '../helpers/openapi.js';

describe('GET /openapi.json and GET /docs', () => {
  let gw: Gateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('serves openapi.yaml as JSON', async () => {
    const res = await request(`${gw.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    expect(doc).toEqual(openapi);
    expect(readFileSync(OPENAPI_PATH, 'utf8')).toContain(`openapi: ${doc.openapi}`);
  });

  it('serves an HTML reference page whose every asset comes from the gateway', async () => {
    const res = await request(`${gw.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'self';/);
    const html = res.body.toString('utf8');
    // Nothing may point at another host: the page must work offline.
    expect(html).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]/i);

    const assets = [...html.matchAll(/<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThanOrEqual(3);
    for (const asset of assets) {
      expect(asset, asset).toMatch(/^\/[^/]/);
      const got = await request(`${gw.url}${asset}`);
      expect(got.status, asset).toBe(200);
      expect(got.body.length, asset).toBeGreaterThan(0);
    }
  });

  it('answers an unknown asset with the 404 envelope', async () => {
    const res = await request(`${gw.url}/docs/assets/nope.js`);
    expect(res.status).toBe(404);
    expect(res.json().error.code).toBe('route_not_found');
  });
});
