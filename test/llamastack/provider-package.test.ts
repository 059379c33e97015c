/**
 * The Python provider package (integrations/llamastack) on its own: flake8, its unit tests under
 * both import roots (ogx and llama_stack), and an offline wheel build that installs and loads.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FLAVORS,
  installProviderWheel,
  pytestCounts,
  ROOT,
  runPython,
  sharedTemp,
  unavailable,
  type Flavor,
} from './stack.js';

const skipped = unavailable();

describe.skipIf(skipped)('the provider package', () => {
  let copy: string;
  beforeAll(async () => {
    copy = await sharedTemp('files-gateway-provider-src-');
    await fs.cp(path.join(ROOT, 'integrations', 'llamastack'), copy, {
      recursive: true,
      filter: (p) => !/__pycache__|\.egg-info/.test(p),
    });
  });
  afterAll(async () => {
    if (copy) await fs.rm(copy, { recursive: true, force: true });
  });

  it('is clean under flake8', () => {
    const run = runPython(['-m', 'flake8', 'src', 'tests'], { cwd: copy });
    expect(run.output.trim(), run.output).toBe('');
    expect(run.status).toBe(0);
  });

  it.each(Object.keys(FLAVORS) as Flavor[])('passes its unit tests importing %s', (flavor) => {
    const run = runPython(['-m', 'pytest', '-q', '-p', 'no:cacheprovider'], {
      cwd: copy,
      flavor,
      pythonPath: [`${copy}/src`, `${copy}/tests`],
    });
    const counts = pytestCounts(run.output);
    expect(counts.failed ?? 0, run.output).toBe(0);
    expect(counts.error ?? 0, run.output).toBe(0);
    expect(counts.passed, run.output).toBeGreaterThanOrEqual(18);
    // The package picked the server it runs in.
    const root = runPython(['-c', 'from files_gateway_llamastack import _stack; print(_stack.SERVER)'], {
      flavor,
      pythonPath: [`${copy}/src`],
    });
    expect(root.stdout.trim()).toBe(flavor === 'ogx' ? 'ogx' : 'llama_stack');
  });

  it('builds a wheel offline that installs and gives LlamaStack the remote::s3-files spec', async () => {
    const { site, wheel } = await installProviderWheel();
    try {
      expect(path.basename(wheel)).toMatch(/^files_gateway_llamastack-\d+\.\d+\.\d+-py3-none-any\.whl$/);
      const spec = runPython(
        [
          '-c',
          'from files_gateway_llamastack.provider import get_provider_spec as g; s = g(); print(s.provider_type, s.api.value, s.module)',
        ],
        { pythonPath: [site] },
      );
      expect(spec.stdout.trim(), spec.output).toBe('remote::s3-files files files_gateway_llamastack');
    } finally {
      await fs.rm(path.dirname(site), { recursive: true, force: true });
    }
  });
});
