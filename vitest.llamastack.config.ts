import { configDefaults, defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:llamastack`: real LlamaStack servers in front of the gateway (scripts/llamastack-e2e.sh
 * sets them up). One file at a time: each server is a Python process of its own on two shared cores.
 */
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/llamastack/**/*.test.ts'],
    exclude: configDefaults.exclude,
    maxWorkers: 1,
    testTimeout: 120_000,
  },
});
