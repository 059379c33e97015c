/**
 * The chart's monitoring: the PrometheusRule's alerts and the Grafana dashboard ConfigMap.
 *
 * - The rendered rule groups pass `promtool check rules`, and `promtool test rules` runs
 *   test/chart/fixtures/prometheus-rules.test.yaml on them: every alert fires from synthetic series
 *   and stays silent on healthy ones.
 * - Every dashboard query parses (`promtool check rules` on them as recording rules).
 * - Every metric the alerts and the dashboard use is on a live gateway's /metrics (S3 store, after an
 *   upload, a list, a download, a 404, a delete and a sweep), with the labels they match on; and
 *   promtool, fed that scrape as an hour of series, finds data for every dashboard query and no alert.
 *
 * promtool comes from the Debian package `prometheus`. Without it the promtool checks are skipped
 * with a warning, unless CI is set: then they fail, saying so.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { filePart, request, upload } from '../helpers/http.js';
import { scrape, type Sample } from '../helpers/metrics.js';
import { createTestBucket, type TestBucket } from '../helpers/s3.js';
import { CHART, ROOT } from './helm.js';
import { validateManifests, type Manifest } from './k8s-validate.js';
import {
  grafanaToPromQL,
  labelValuesSelector,
  promtool,
  promtoolBin,
  PROMTOOL_MISSING,
  SCRAPE_SERIES,
  selectors,
  TARGET_LABELS,
  type Selector,
} from './promql.js';
import { find, get, render } from './render.js';

const FIXTURE = path.join(ROOT, 'test', 'chart', 'fixtures', 'prometheus-rules.test.yaml');
const DASHBOARD_FILE = path.join(CHART, 'dashboards', 'files-gateway.json');
const OPERATIONS_DOC = path.join(ROOT, 'docs', 'operations.md');

const ON = { 'metrics.prometheusRule.enabled': true, 'metrics.grafanaDashboard.enabled': true };
const ALERTS = [
  'FilesGatewayHighErrorRatio',
  'FilesGatewayStoreErrors',
  'FilesGatewayCatalogErrors',
  'FilesGatewayTargetDown',
  'FilesGatewayMetricsAbsent',
  'FilesGatewayNotReady',
  'FilesGatewayUploadFailures',
  'FilesGatewaySweeperStalled',
  'FilesGatewaySweepsFailing',
];
// What Prometheus adds to the series of a pod scraped through the chart's ServiceMonitor (release
// "rel" in namespace "llama"): the same labels the rules' default selector and the fixture use.
const TARGET = {
  job: 'rel-files-gateway',
  namespace: 'llama',
  instance: '10.128.0.10:8080',
  pod: 'rel-files-gateway-5d8f7c9b4-x2x7q',
};
// The dashboard's variables as Grafana fills them in for that pod.
const DASHBOARD_VARIABLES = { datasource: 'prometheus', namespace: TARGET.namespace, job: TARGET.job, instance: '.*' };
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's own variable reference, literally
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

const PROMTOOL = promtoolBin();
const SKIP_PROMTOOL = PROMTOOL === undefined && !process.env.CI;
if (SKIP_PROMTOOL) console.warn(`monitoring.test.ts: SKIPPED the promtool checks: ${PROMTOOL_MISSING}`);
const withPromtool = (title: string) => (SKIP_PROMTOOL ? `${title} (SKIPPED: ${PROMTOOL_MISSING})` : title);

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface Target {
  expr: string;
  refId: string;
  datasource?: { type: string; uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string } }[] };
}

/** Where a PromQL expression comes from, for the messages. */
interface Use {
  where: string;
  expr: string;
}

const rulesOf = (m: Manifest[]): Rule[] =>
  get(m, 'PrometheusRule').spec.groups.flatMap((g: { rules: Rule[] }) => g.rules);

function dashboardOf(m: Manifest[]): Dashboard {
  const cm = get(m, 'ConfigMap', 'rel-files-gateway-dashboard');
  return JSON.parse(cm.data['files-gateway.json']) as Dashboard;
}

/** Every query of the dashboard, as Prometheus would receive it for the test pod. */
function dashboardQueries(d: Dashboard): Use[] {
  const uses: Use[] = [];
  for (const p of d.panels) {
    for (const t of p.targets ?? []) {
      uses.push({ where: `panel "${p.title}" ${t.refId}`, expr: grafanaToPromQL(t.expr, DASHBOARD_VARIABLES) });
    }
  }
  for (const v of d.templating.list.filter((x) => x.type === 'query')) {
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const selector = labelValuesSelector(query);
    if (selector) uses.push({ where: `variable $${v.name}`, expr: grafanaToPromQL(selector, DASHBOARD_VARIABLES) });
  }
  return uses;
}

const alertUses = (rules: Rule[]): Use[] => rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));

interface Scratch {
  dir: string;
  /** Writes a file (objects as YAML) and returns its path. */
  write(name: string, content: unknown): string;
}

/** Runs `fn` with a folder of its own for promtool's files, removed afterwards. */
async function inScratch<T>(fn: (s: Scratch) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-monitoring-'));
  const write = (name: string, content: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, typeof content === 'string' ? content : stringify(content, { lineWidth: 0 }));
    return file;
  };
  try {
    return await fn({ dir, write });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** GitHub's anchor for a Markdown heading. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

describe('reading PromQL (the helper the checks below rely on)', () => {
  it('finds metric names with their matchers, not functions, keywords, label names, strings or durations', () => {
    const expr = `sum by (le, route) (rate(http_request_duration_seconds_bucket{job="a",route=~"/v1/files|x{1}"}[5m] offset 1h30m))
      / on (job) group_left (version) max without (instance) (files_gateway_build_info)
      and ignoring (pod) topk(3, up > bool 0) or label_replace(vector(1), "dst", "$1", "src", "(.*)")
      unless absent({__name__="files_gateway_files_stored", namespace!="x"}) # a comment naming not_a_metric
      or histogram_quantile(0.99, rate(x_bucket[5m:1m])) > Inf`;
    expect(selectors(expr)).toEqual([
      {
        metric: 'http_request_duration_seconds_bucket',
        matchers: [
          { label: 'job', op: '=', value: 'a' },
          { label: 'route', op: '=~', value: '/v1/files|x{1}' },
        ],
      },
      { metric: 'files_gateway_build_info', matchers: [] },
      { metric: 'up', matchers: [] },
      { metric: 'files_gateway_files_stored', matchers: [{ label: 'namespace', op: '!=', value: 'x' }] },
      { metric: 'x_bucket', matchers: [] },
    ]);
  });

  it('refuses what it cannot read rather than guessing', () => {
    expect(() => selectors('rate_of(x[5m])')).toThrow(/unknown PromQL function rate_of/);
    expect(() => selectors('x{job=}')).toThrow(/label matchers/);
    expect(() => grafanaToPromQL('x{job="$nope"}', DASHBOARD_VARIABLES)).toThrow(/\$nope/);
  });

  it('turns Grafana queries into PromQL', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${name} form of a variable, literally
    const query = 'rate(x{job="$job", instance=~"${instance}"}[$__rate_interval])';
    expect(grafanaToPromQL(query, DASHBOARD_VARIABLES)).toBe('rate(x{job="rel-files-gateway", instance=~".*"}[5m])');
    expect(labelValuesSelector('label_values(files_gateway_build_info{namespace="$namespace"}, job)')).toBe(
      'files_gateway_build_info{namespace="$namespace"}',
    );
  });
});

describe('PrometheusRule and dashboard ConfigMap', () => {
  let m: Manifest[];
  beforeAll(async () => {
    m = await render({ valuesFile: 'monitoring-values.yaml' });
  });

  it('are off by default', async () => {
    const off = await render();
    expect(find(off, 'PrometheusRule')).toBeUndefined();
    expect(find(off, 'ConfigMap')).toBeUndefined();
  });

  it('the PrometheusRule carries the labels Prometheus selects rules by, in the release namespace unless told', async () => {
    const rule = get(m, 'PrometheusRule');
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.metadata).toMatchObject({ name: 'rel-files-gateway', namespace: 'llama' });
    expect(rule.metadata.labels).toMatchObject({ release: 'prometheus', 'app.kubernetes.io/instance': 'rel' });
    const elsewhere = await render({ set: { ...ON, 'metrics.prometheusRule.namespace': 'monitoring' } });
    expect(get(elsewhere, 'PrometheusRule').metadata.namespace).toBe('monitoring');
  });

  it('thresholds, durations, severities and the selector come from values', async () => {
    const rules = rulesOf(m);
    expect(rules.map((r) => r.alert)).toEqual(ALERTS.filter((a) => a !== 'FilesGatewayMetricsAbsent'));
    const uploads = rules.find((r) => r.alert === 'FilesGatewayUploadFailures')!;
    expect(uploads.expr).toMatch(/> 0\.2$/);
    expect(uploads.for).toBe('15m');
    expect(uploads.labels).toEqual({ severity: 'warning', team: 'ml-platform' });
    for (const r of rules) expect(r.expr, r.alert).not.toMatch(/\{\s*,/);

    const custom = rulesOf(
      await render({
        values: {
          metrics: {
            prometheusRule: {
              enabled: true,
              selector: 'job="files",cluster="east"',
              alerts: { httpErrors: { threshold: 0.2, severity: 'page' } },
            },
          },
          config: { sweepIntervalSeconds: 7200 },
        },
      }),
    );
    expect(custom).toHaveLength(ALERTS.length);
    const errors = custom.find((r) => r.alert === 'FilesGatewayHighErrorRatio')!;
    expect(errors.expr).toContain('http_request_duration_seconds_count{job="files",cluster="east",');
    expect(errors.expr).toMatch(/> 0\.2$/);
    expect(errors.labels).toEqual({ severity: 'page' });
    for (const r of custom) expect(r.expr, r.alert).not.toContain('rel-files-gateway');
    // Three sweep intervals of two hours each.
    expect(custom.find((r) => r.alert === 'FilesGatewaySweeperStalled')!.expr).toContain('[6h]');
    expect(rulesOf(m).find((r) => r.alert === 'FilesGatewaySweepsFailing')!.expr).toContain('[15m]');
  });

  it('every alert has a severity, a summary, a description and a runbook hint naming a section of docs/operations.md', () => {
    const headings = fs
      .readFileSync(OPERATIONS_DOC, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('## '))
      .map((l) => l.slice(3).trim());
    for (const r of rulesOf(m)) {
      expect(r.labels?.severity, r.alert).toMatch(/^(critical|warning)$/);
      expect(r.annotations?.summary, r.alert).toMatch(/\S/);
      expect(r.annotations?.description, r.alert).toMatch(/\S/);
      const section = /See docs\/operations\.md, "([^"]+)"\.$/.exec(r.annotations?.runbook ?? '')?.[1];
      expect(headings, `${r.alert}: ${r.annotations?.runbook}`).toContain(section);
      expect(r.annotations?.runbook_url, r.alert).toBe(
        `https://git.example.com/llama/files-gateway/-/blob/main/docs/operations.md#${anchor(section!)}`,
      );
    }
  });

  it('without runbookBaseUrl the alerts carry the hint but no runbook_url', async () => {
    for (const r of rulesOf(await render({ set: ON }))) {
      expect(r.annotations?.runbook, r.alert).toContain('docs/operations.md');
      expect(r.annotations, r.alert).not.toHaveProperty('runbook_url');
    }
  });

  it('the dashboard ConfigMap holds the chart dashboard file, with the sidecar label and the folder annotation', () => {
    const cm = get(m, 'ConfigMap', 'rel-files-gateway-dashboard');
    expect(cm.metadata.namespace).toBe('monitoring');
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1', 'app.kubernetes.io/instance': 'rel' });
    expect(cm.metadata.annotations).toEqual({ grafana_folder: 'LlamaStack' });
    expect(Object.keys(cm.data)).toEqual(['files-gateway.json']);
    expect(JSON.parse(cm.data['files-gateway.json'])).toEqual(JSON.parse(fs.readFileSync(DASHBOARD_FILE, 'utf8')));
  });

  it('the dashboard is well formed: unique panel ids, every query on the chosen data source, no overlapping panels', () => {
    const d = dashboardOf(m);
    expect(d.uid).toBe('files-gateway');
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const variables = d.templating.list.map((v) => v.name);
    expect(variables).toEqual(['datasource', 'namespace', 'job', 'instance']);
    const cells = new Map<string, string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.get(`${i},${j}`), `"${p.title}" overlaps`).toBeUndefined();
          cells.set(`${i},${j}`, p.title);
        }
      }
      if (p.type === 'row') continue;
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.datasource, p.title).toEqual(DATASOURCE);
      for (const t of p.targets!) {
        expect(t.datasource, `${p.title} ${t.refId}`).toEqual(DATASOURCE);
        // Every query is scoped to the chosen gateway.
        for (const s of selectors(grafanaToPromQL(t.expr, DASHBOARD_VARIABLES))) {
          const labels = s.matchers.map((x) => x.label);
          expect(labels, `${p.title} ${t.refId}: ${s.metric}`).toEqual(expect.arrayContaining(['namespace', 'job']));
        }
      }
    }
  });

  it('validate against the Kubernetes and Prometheus Operator schemas, which catch a misspelled rule field', async () => {
    expect(await validateManifests(m)).toEqual([]);
    const broken = structuredClone(m);
    const rule = get(broken, 'PrometheusRule').spec.groups[0].rules[0];
    rule.expresion = rule.expr;
    delete rule.expr;
    expect((await validateManifests(broken)).join('\n')).toMatch(/expresion|expr/);
  });
});

describe.skipIf(SKIP_PROMTOOL)(withPromtool('promtool on the rules and the dashboard queries'), () => {
  it('is installed (required when CI is set)', async () => {
    if (!PROMTOOL) throw new Error(`CI is set and ${PROMTOOL_MISSING}`);
    expect(await promtool(['--version'])).toMatch(/promtool, version \d+\.\d+/);
  });

  it.each([
    ['default thresholds', { set: ON }],
    ['ci/monitoring-values.yaml', { valuesFile: 'monitoring-values.yaml' }],
    [
      'a custom selector and a 2 h sweep interval',
      { set: { ...ON, 'metrics.prometheusRule.selector': 'job="files"', 'config.sweepIntervalSeconds': 7200 } },
    ],
  ])('promtool check rules accepts the rendered rule groups (%s)', async (_what, opts) => {
    const groups = get(await render(opts), 'PrometheusRule').spec.groups;
    const out = await inScratch((dir) => promtool(['check', 'rules', dir.write('rules.yaml', { groups })]));
    expect(out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('promtool test rules: each alert fires on failing series and stays silent on healthy ones', async () => {
    // The fixture must cover every alert both ways.
    const fixture = parse(fs.readFileSync(FIXTURE, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    };
    const cases = fixture.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of ALERTS) {
      const expected = cases.filter((c) => c.alertname === alert).map((c) => (c.exp_alerts ?? []).length);
      expect(
        expected.some((n) => n > 0),
        `${alert} fires`,
      ).toBe(true);
      expect(
        expected.some((n) => n === 0),
        `${alert} stays silent`,
      ).toBe(true);
    }
    const m = await render({ set: ON });
    expect(rulesOf(m).map((r) => r.alert)).toEqual(ALERTS);
    const out = await inScratch((dir) => {
      dir.write('files-gateway-rules.yaml', { groups: get(m, 'PrometheusRule').spec.groups });
      dir.write('prometheus-rules.test.yaml', fs.readFileSync(FIXTURE, 'utf8'));
      return promtool(['test', 'rules', 'prometheus-rules.test.yaml'], dir.dir);
    });
    expect(out).toContain('SUCCESS');
  });

  it('promtool test rules fails when an alert is changed (the unit tests have teeth)', async () => {
    const m = await render({ set: { ...ON, 'metrics.prometheusRule.alerts.notReady.threshold': '0.8' } });
    const run = inScratch((dir) => {
      dir.write('files-gateway-rules.yaml', { groups: get(m, 'PrometheusRule').spec.groups });
      dir.write('prometheus-rules.test.yaml', fs.readFileSync(FIXTURE, 'utf8'));
      return promtool(['test', 'rules', 'prometheus-rules.test.yaml'], dir.dir);
    });
    await expect(run).rejects.toThrow(/FilesGatewayNotReady/);
  });

  it('every dashboard query parses (promtool check rules on each as a recording rule)', async () => {
    const uses = dashboardQueries(dashboardOf(await render({ set: ON })));
    expect(uses.length).toBeGreaterThan(30);
    const rules = uses.map((u, i) => ({ record: `files_gateway_dashboard:query_${i}`, expr: u.expr }));
    const groups = [{ name: 'dashboard', rules }];
    const out = await inScratch((dir) => promtool(['check', 'rules', dir.write('dashboard-queries.yaml', { groups })]));
    expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
  });
});

describe('the metrics the alerts and the dashboard use are on a live gateway', () => {
  let bucket: TestBucket;
  let gw: Gateway;
  let samples: Sample[];
  /** # TYPE of every metric family on the page. */
  const types = new Map<string, string>();
  let uses: Use[];

  beforeAll(async () => {
    const m = await render({ set: ON });
    uses = [...alertUses(rulesOf(m)), ...dashboardQueries(dashboardOf(m))];

    // An S3 store, so the store calls are counted too (the fs store makes none).
    bucket = await createTestBucket({ label: 'monitoring' });
    gw = await startGateway({ s3: bucket.config() });
    const created = await upload(gw.url, [{ name: 'purpose', value: 'assistants' }, filePart('watched bytes')]);
    expect(created.status).toBe(200);
    const id = created.json().id as string;
    expect((await request(`${gw.url}/v1/files`)).status).toBe(200);
    expect((await request(`${gw.url}/v1/files/${id}/content`)).body.toString()).toBe('watched bytes');
    expect((await request(`${gw.url}/v1/files/file-${'0'.repeat(32)}`)).status).toBe(404);
    expect((await request(`${gw.url}/v1/files/${id}`, { method: 'DELETE' })).status).toBe(200);
    expect((await request(`${gw.url}/readyz`)).status).toBe(200);
    // One round of what `serve` runs every FILES_SWEEP_INTERVAL_SECONDS (test gateways start no timer).
    await gw.files.sweep();

    const page = await request(`${gw.url}/metrics`);
    for (const [, name, type] of page.body.toString('utf8').matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(name!, type!);
    samples = await scrape(gw.url);
  });
  afterAll(async () => {
    await gw?.close();
    await bucket?.destroy();
  });

  /** The family a series name belongs to: itself, or a histogram's or summary's base name. */
  function family(name: string): { family: string; type: string } | undefined {
    const type = types.get(name);
    if (type) return { family: name, type };
    const m = /^(.+)_(bucket|sum|count)$/.exec(name);
    const base = m && types.get(m[1]!);
    if (base === 'histogram' || (base === 'summary' && m![2] !== 'bucket')) return { family: m![1]!, type: base };
    return undefined;
  }

  const selectorsOf = (u: Use): Selector[] => selectors(u.expr);

  it('every metric name is exported, with series, and histograms are used through their series', () => {
    const problems: string[] = [];
    const used = new Set<string>();
    for (const u of uses) {
      for (const s of selectorsOf(u)) {
        if (SCRAPE_SERIES.has(s.metric)) continue;
        const f = family(s.metric);
        if (!f) {
          problems.push(`${u.where}: ${s.metric} is not exported`);
        } else if (f.type === 'histogram' && f.family === s.metric) {
          problems.push(`${u.where}: ${s.metric} is a histogram: use _bucket, _sum or _count`);
        } else if (!samples.some((x) => x.name === s.metric)) {
          problems.push(`${u.where}: ${s.metric} has no series after the exercise`);
        }
        if (f) used.add(f.family);
      }
    }
    expect(problems).toEqual([]);
    // The dashboard shows every metric the gateway itself defines.
    const own = [...types.keys()].filter((n) => n.startsWith('files_gateway_') || n.startsWith('http_'));
    expect(own.filter((n) => !used.has(n))).toEqual([]);
  });

  it('the labels they match on exist on those metrics, and the routes and operations they name occur', () => {
    const problems: string[] = [];
    for (const u of uses) {
      for (const s of selectorsOf(u)) {
        if (SCRAPE_SERIES.has(s.metric)) continue;
        const series = samples.filter((x) => x.name === s.metric);
        for (const { label, op, value } of s.matchers) {
          if (TARGET_LABELS.has(label)) continue;
          const values = series.filter((x) => label in x.labels).map((x) => x.labels[label]!);
          if (values.length === 0) {
            problems.push(`${u.where}: ${s.metric} has no label ${label}`);
            continue;
          }
          // Routes and operations name code paths: a typo there would match nothing, ever.
          if (label !== 'route' && label !== 'operation') continue;
          const regex = new RegExp(`^(?:${value})$`);
          const hit = op === '=' ? values.includes(value) : op === '=~' ? values.some((v) => regex.test(v)) : true;
          if (!hit) {
            const seen = [...new Set(values)].join(', ');
            problems.push(`${u.where}: no ${s.metric} series with ${label}${op}"${value}" (seen: ${seen})`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  /**
   * The scrape as promtool input: every sample a series of the test pod growing by its scraped value
   * each minute for an hour (so counters have rates and histograms stay cumulative), and `up`.
   */
  function replayed(): { series: string; values: string }[] {
    const num = (v: number) => (!Number.isFinite(v) ? '0' : Number.isInteger(v) ? String(v) : v.toFixed(9));
    const labelText = (labels: Record<string, string>) =>
      Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
    const input = samples.map((s) => ({
      series: `${s.name}{${labelText({ ...s.labels, ...TARGET })}}`,
      values: `${num(s.value)}+${num(s.value)}x60`,
    }));
    input.push({ series: `up{${labelText(TARGET)}}`, values: '1x60' });
    return input;
  }

  it.skipIf(SKIP_PROMTOOL)(
    withPromtool('promtool finds data for every dashboard query in that scrape, replayed an hour long'),
    async () => {
      // count(...) > bool 0 is 1 when the query returns any series, and nothing when it returns none.
      const tests = uses
        .filter((u) => !u.where.startsWith('alert '))
        .map((u) => ({
          expr: `count(${u.expr}) > bool 0`,
          eval_time: '60m',
          exp_samples: [{ labels: '{}', value: 1 }],
        }));
      const out = await inScratch((dir) => {
        dir.write('rules.yaml', { groups: [] });
        dir.write('live.test.yaml', {
          rule_files: ['rules.yaml'],
          evaluation_interval: '1m',
          tests: [
            {
              name: 'dashboard queries over the live scrape',
              interval: '1m',
              input_series: replayed(),
              promql_expr_test: tests,
            },
          ],
        });
        return promtool(['test', 'rules', 'live.test.yaml'], dir.dir);
      });
      expect(out).toContain('SUCCESS');
    },
  );

  it.skipIf(SKIP_PROMTOOL)(withPromtool('no alert fires on that healthy scrape, replayed an hour long'), async () => {
    const groups = get(await render({ set: ON }), 'PrometheusRule').spec.groups;
    const tests = ALERTS.flatMap((alertname) =>
      ['30m', '60m'].map((t) => ({ eval_time: t, alertname, exp_alerts: [] })),
    );
    const out = await inScratch((dir) => {
      dir.write('files-gateway-rules.yaml', { groups });
      dir.write('live.test.yaml', {
        rule_files: ['files-gateway-rules.yaml'],
        evaluation_interval: '1m',
        tests: [
          { name: 'alerts over the live scrape', interval: '1m', input_series: replayed(), alert_rule_test: tests },
        ],
      });
      return promtool(['test', 'rules', 'live.test.yaml'], dir.dir);
    });
    expect(out).toContain('SUCCESS');
  });
});
