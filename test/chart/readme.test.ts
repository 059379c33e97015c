/**
 * Every value is documented (an `## @param` comment in values.yaml) and the chart README's
 * parameter tables are exactly what @bitnami/readme-generator-for-helm makes from those comments.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART, ROOT } from './helm.js';

const run = promisify(execFile);
const GENERATOR = path.join(ROOT, 'node_modules', '.bin', 'readme-generator');

describe('chart README and values documentation', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-readme-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('the README parameter tables are up to date with values.yaml', async () => {
    const readme = path.join(tmp, 'README.md');
    fs.copyFileSync(path.join(CHART, 'README.md'), readme);
    await run(GENERATOR, ['-v', path.join(CHART, 'values.yaml'), '-r', readme]);
    // If this fails: npx readme-generator -v charts/files-gateway/values.yaml -r charts/files-gateway/README.md
    expect(fs.readFileSync(readme, 'utf8')).toBe(fs.readFileSync(path.join(CHART, 'README.md'), 'utf8'));
  });

  it('an undocumented value fails the generator (so the check above has teeth)', async () => {
    const values = path.join(tmp, 'values.yaml');
    fs.writeFileSync(values, `${fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')}\nundocumented: 1\n`);
    fs.copyFileSync(path.join(CHART, 'README.md'), path.join(tmp, 'README2.md'));
    await expect(run(GENERATOR, ['-v', values, '-r', path.join(tmp, 'README2.md')])).rejects.toMatchObject({
      stdout: expect.stringContaining('Missing metadata for key: undocumented'),
    });
  });

  it('values.schema.json is draft-07, closed at the top level, and knows every top-level value', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.additionalProperties).toBe(false);
    const values = parse(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    expect(
      Object.keys(schema.properties)
        .filter((k) => k !== 'global')
        .sort(),
    ).toEqual(Object.keys(values).sort());
  });
});
