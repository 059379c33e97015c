/**
 * The configuration is documented both ways: the environment variables src/config.ts reads (its
 * VARIABLES list, checked against the source) are exactly the rows of docs/configuration.md's table,
 * and the Helm chart sets only variables the gateway reads while leaving every one of them settable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { VARIABLES } from '../src/config.js';
import { CHART, ROOT } from './chart/helm.js';
import type { Manifest } from './chart/k8s-validate.js';
import { get, render } from './chart/render.js';

const CONFIG_SOURCE = fs.readFileSync(path.join(ROOT, 'src', 'config.ts'), 'utf8');
const DOCS = fs.readFileSync(path.join(ROOT, 'docs', 'configuration.md'), 'utf8');
const ENV_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;

/**
 * Variables the chart may set although the gateway does not read them, because the process does:
 * node, or glibc, before any of the gateway's code runs. GLIBC_TUNABLES is not here: config.ts reads
 * it too, to report it.
 */
const READ_BY_THE_PROCESS: Record<string, string> = {
  NODE_OPTIONS: 'read by node itself at start-up (flags such as --max-old-space-size)',
};

const sorted = (names: Iterable<string>) => [...new Set(names)].sort();
const minus = (a: Iterable<string>, b: Iterable<string>) => {
  const drop = new Set(b);
  return sorted([...a].filter((x) => !drop.has(x)));
};

/** Fails with both differences spelt out, each name on its own line. */
function expectSameNames(
  actual: Iterable<string>,
  expected: Iterable<string>,
  labels: { missing: string; extra: string },
): void {
  const missing = minus(expected, actual);
  const extra = minus(actual, expected);
  const message = [
    missing.length > 0 ? `${labels.missing}:\n  ${missing.join('\n  ')}` : '',
    extra.length > 0 ? `${labels.extra}:\n  ${extra.join('\n  ')}` : '',
  ]
    .filter(Boolean)
    .join('\n');
  expect({ missing, extra }, message).toEqual({ missing: [], extra: [] });
}

/** config.ts without its VARIABLES declaration: what the readers and their messages name. */
function sourceOutsideTheList(): string {
  const list = /export const VARIABLES = \[[^\]]*\] as const;/.exec(CONFIG_SOURCE);
  expect(list, 'src/config.ts declares `export const VARIABLES = [...] as const;`').not.toBeNull();
  return CONFIG_SOURCE.replace(list![0], '');
}

/** The names in backticks in the first column of the table under "## Every variable". */
function documentedNames(): string[] {
  const start = DOCS.indexOf('\n## Every variable\n');
  expect(start, 'docs/configuration.md has a "## Every variable" section').toBeGreaterThanOrEqual(0);
  const rest = DOCS.slice(start + 1);
  const end = rest.indexOf('\n## ', 1);
  const lines = (end < 0 ? rest : rest.slice(0, end)).split('\n');
  const tables = lines.filter((l, i) => l.startsWith('|') && !lines[i - 1]?.startsWith('|')).length;
  expect(tables, 'one table under "## Every variable"').toBe(1);
  const rows = lines.filter((l) => l.startsWith('|')).slice(2); // after the header and the |---| line
  const names = rows.map((row) => {
    const first = row.split('|')[1]!.trim();
    const m = /^`([^`]+)`$/.exec(first);
    if (!m || !ENV_NAME.test(m[1]!))
      throw new Error(`docs/configuration.md: "${first}" is not a variable in backticks`);
    return m[1]!;
  });
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  expect(twice, 'variables with more than one row in docs/configuration.md').toEqual([]);
  return names;
}

describe('src/config.ts: the variables it reads', () => {
  it('VARIABLES is exactly the set of names the readers and messages use, each listed once', () => {
    const listed: readonly string[] = VARIABLES;
    expect(
      listed.filter((n, i) => listed.indexOf(n) !== i),
      'names listed twice in VARIABLES',
    ).toEqual([]);
    const used = [...sourceOutsideTheList().matchAll(/'([A-Z][A-Z0-9_]*)'/g)]
      .map((m) => m[1]!)
      .filter((n) => ENV_NAME.test(n));
    expectSameNames(used, listed, {
      missing: 'in VARIABLES but never read by src/config.ts (remove them, or read them)',
      extra: 'named in src/config.ts but missing from VARIABLES (add them, and a row to docs/configuration.md)',
    });
  });

  it('reads the environment only through read(): no other env access there, none anywhere else in src/', () => {
    const accesses = [...CONFIG_SOURCE.matchAll(/\benv\s*(?:\?\.)?\s*(?:\.\s*[A-Za-z_$][\w$]*|\[[^\]]*\])/g)].map(
      (m) => m[0],
    );
    expect(accesses, 'direct env accesses in src/config.ts besides the one in read()').toEqual(['env[name]']);
    const processEnv = CONFIG_SOURCE.split('\n').filter((line) => line.includes('process.env'));
    expect(
      processEnv.filter((line) => !line.includes('loadConfig(env: Env = process.env)')),
      'process.env in src/config.ts besides loadConfig’s default',
    ).toEqual([]);
    const elsewhere: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(file);
        else if (file.endsWith('.ts') && file !== path.join(ROOT, 'src', 'config.ts')) {
          if (/process\.env\b/.test(fs.readFileSync(file, 'utf8'))) elsewhere.push(path.relative(ROOT, file));
        }
      }
    };
    walk(path.join(ROOT, 'src'));
    expect(elsewhere, 'files under src/ other than config.ts that read process.env').toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  it('has one table row for every variable src/config.ts reads, and no other', () => {
    expectSameNames(documentedNames(), VARIABLES, {
      missing: 'read by src/config.ts (VARIABLES) but without a row in docs/configuration.md',
      extra: 'in docs/configuration.md but not read by src/config.ts',
    });
  });
});

describe('the Helm chart and the variables', () => {
  /** Every optional feature on: endpoint, prefix, part size, queue, CA bundle, keys, upload limits. */
  const everythingOn = {
    config: { maxUploadBytes: '8GiB', maxPartBytes: '64MiB' },
    auth: { existingSecret: 'files-gateway-api-keys' },
    s3: { prefix: 'files', partSize: '16MiB', queueSize: 8, caBundle: { configMap: 's3-ca' } },
  };
  /** The catalog is one or the other: each renders its own variable. */
  const renders = {
    'everything on, SQLite catalog': everythingOn,
    'everything on, PostgreSQL catalog': {
      ...everythingOn,
      catalog: { type: 'postgres', postgres: { existingSecret: 'files-gateway-postgres' } },
    },
  };
  const envOf = (m: Manifest[]): { name: string; value?: string }[] =>
    get(m, 'Deployment').spec.template.spec.containers[0].env;

  /** The variables the chart renders from its values, over both renders. */
  let fromValues: string[];
  beforeAll(async () => {
    const perRender = await Promise.all(
      Object.values(renders).map(async (values) => envOf(await render({ values })).map((e) => e.name)),
    );
    fromValues = sorted(perRender.flat());
  });

  it('sets only variables the gateway reads (or the process does, listed with the reason)', () => {
    expect(fromValues.length, 'some environment is rendered').toBeGreaterThan(0);
    const unknown = minus(fromValues, [...VARIABLES, ...Object.keys(READ_BY_THE_PROCESS)]);
    expect(
      unknown,
      `templates/deployment.yaml sets variables that src/config.ts does not read:\n  ${unknown.join('\n  ')}`,
    ).toEqual([]);
  });

  it('the variables it renders from values are the ones its section of docs/configuration.md names', () => {
    const start = DOCS.indexOf("\n## The Helm chart's values\n");
    expect(start, 'docs/configuration.md has a "## The Helm chart\'s values" section').toBeGreaterThanOrEqual(0);
    const section = DOCS.slice(start);
    const named = [...section.matchAll(/`([A-Z][A-Z0-9_]*)(?:=[^`]*)?`/g)].map((m) => m[1]!);
    const undocumented = minus(fromValues, named);
    expect(
      undocumented,
      `rendered by the chart but not named in docs/configuration.md's chart section:\n  ${undocumented.join('\n  ')}`,
    ).toEqual([]);
  });

  it('leaves every other variable settable through extraEnv, next to the ones it renders', async () => {
    // values.yaml declares the generic list; the chart's own variables come from values instead.
    const values = parseYaml(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as { extraEnv?: unknown };
    expect(values.extraEnv, 'values.yaml declares extraEnv: []').toEqual([]);
    const rest = minus(VARIABLES, fromValues);
    expect(rest.length).toBeGreaterThan(0);
    const extraEnv = rest.map((name) => ({ name, value: `set-${name.toLowerCase()}` }));
    const env = envOf(await render({ values: { ...everythingOn, extraEnv } }));
    const passed = env.filter((e) => e.value === `set-${e.name.toLowerCase()}`).map((e) => e.name);
    expectSameNames(passed, rest, {
      missing: 'read by src/config.ts, not rendered from a value and not passed through extraEnv',
      extra: 'passed through extraEnv although not asked for',
    });
    const twice = env.map((e) => e.name).filter((n, i, all) => all.indexOf(n) !== i);
    expect(twice, 'variables set twice in the container').toEqual([]);
  });
});
