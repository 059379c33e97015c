import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { parse } from 'yaml';
import { GatewayError } from '../errors.js';

/** Two levels up from both src/api/ (tests) and dist/api/ (the built package) is the package root. */
export const OPENAPI_YAML = fileURLToPath(new URL('../../openapi/openapi.yaml', import.meta.url));

const swaggerUiDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

// The reference page starts Swagger UI from its own script: with no inline script, the CSP below
// can forbid every inline and foreign script.
const INIT_SCRIPT = `window.addEventListener('load', () => {
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null });
});
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>files-gateway API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs.js"></script>
</body>
</html>
`;

/** The page only ever talks to the gateway that served it, so it works offline and leaks nothing. */
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/**
 * GET /openapi.json (the contract, parsed once at start-up) and GET /docs, an interactive reference
 * whose assets come from the swagger-ui-dist package, served here rather than from a CDN.
 */
export async function docsRoutes(app: FastifyInstance): Promise<void> {
  const document = JSON.stringify(parse(readFileSync(OPENAPI_YAML, 'utf8')));
  // Read at start-up so a missing asset fails the boot, not a page view.
  const assets = new Map<string, { type: string; body: Buffer | string }>([
    [
      'swagger-ui.css',
      { type: 'text/css; charset=utf-8', body: readFileSync(path.join(swaggerUiDir, 'swagger-ui.css')) },
    ],
    [
      'swagger-ui-bundle.js',
      { type: 'text/javascript; charset=utf-8', body: readFileSync(path.join(swaggerUiDir, 'swagger-ui-bundle.js')) },
    ],
    ['docs.js', { type: 'text/javascript; charset=utf-8', body: INIT_SCRIPT }],
  ]);

  app.get('/openapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').send(document));

  app.get('/docs', async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP).send(PAGE),
  );

  app.get<{ Params: { asset: string } }>('/docs/assets/:asset', async (request, reply) => {
    const asset = assets.get(request.params.asset);
    if (!asset)
      throw new GatewayError(
        404,
        'invalid_request_error',
        'route_not_found',
        `Asset ${request.params.asset} not found.`,
      );
    return reply.type(asset.type).header('cache-control', 'public, max-age=3600').send(asset.body);
  });
}
