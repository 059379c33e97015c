import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Fault tests kill processes and wait out timeouts (`npm run test:faults`); the LlamaStack tests
    // need its servers (`npm run test:llamastack`). CI runs all three.
    exclude: [...configDefaults.exclude, 'test/faults/**', 'test/llamastack/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run in parallel processes, but not more than the machine has.
    maxWorkers: 2,
    pool: 'forks',
    // One S3 server (Ceph RGW; s3rver only as a loud local fallback) for the whole run.
    globalSetup: ['test/global-setup.ts'],
  },
});
