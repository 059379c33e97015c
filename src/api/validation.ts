/**
 * Request validation: fastify's own Ajv compiler, twice. JSON bodies are checked as sent, with no
 * type coercion (`"bytes": "10"`, `null`, `true` or `[10]` is a 400, as OpenAI answers), while the
 * query string, path parameters and headers, which only ever arrive as text, keep fastify's
 * coercing instance (`?limit=10` is the number 10).
 */
import AjvCompiler from '@fastify/ajv-compiler';

const pool = AjvCompiler();

/** For `Fastify({ schemaController: { compilersFactory: { buildValidator } } })`. */
export const buildValidator: AjvCompiler.ValidatorFactory = (externalSchemas, options) => {
  const coercing = pool(externalSchemas, options);
  const strict = pool(externalSchemas, {
    ...options,
    customOptions: { ...options?.customOptions, coerceTypes: false },
  } as Parameters<AjvCompiler.ValidatorFactory>[1]);
  return (route) => (route.httpPart === 'body' ? strict : coercing)(route);
};
