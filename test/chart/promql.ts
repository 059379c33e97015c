/**
 * PromQL for the monitoring tests: the real promtool (Debian package `prometheus`; PROMTOOL_BIN
 * overrides it), and the metric names and label matchers an expression uses, read with a small
 * tokenizer so that functions, keywords, label names, strings and durations are never taken for
 * metric names.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const PROMTOOL_MISSING =
  'promtool is not installed: apt-get install -y prometheus (Debian; it brings promtool), or set PROMTOOL_BIN';

/** The promtool to run, or undefined when there is none. */
export function promtoolBin(): string | undefined {
  const bin = process.env.PROMTOOL_BIN || 'promtool';
  return spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0 ? bin : undefined;
}

/** `promtool ...args`; resolves with its output, rejects with it (stdout and stderr) on a non-zero exit. */
export async function promtool(args: string[], cwd?: string): Promise<string> {
  const bin = promtoolBin();
  if (!bin) throw new Error(PROMTOOL_MISSING);
  try {
    const { stdout, stderr } = await run(bin, args, { cwd, maxBuffer: 32 * 1024 * 1024 });
    return `${stdout}${stderr}`;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || e.message);
  }
}

/** Labels Prometheus attaches to every series of a target scraped through a ServiceMonitor. */
export const TARGET_LABELS = new Set(['job', 'namespace', 'instance', 'pod', 'service', 'endpoint', 'container']);

/** Series Prometheus makes up itself for each target, which no /metrics page shows. */
export const SCRAPE_SERIES = new Set([
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'scrape_series_added',
]);

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);

const FUNCTIONS = new Set([
  ...AGGREGATIONS,
  'abs',
  'absent',
  'absent_over_time',
  'acos',
  'acosh',
  'asin',
  'asinh',
  'atan',
  'atanh',
  'avg_over_time',
  'ceil',
  'changes',
  'clamp',
  'clamp_max',
  'clamp_min',
  'cos',
  'cosh',
  'count_over_time',
  'day_of_month',
  'day_of_week',
  'day_of_year',
  'days_in_month',
  'deg',
  'delta',
  'deriv',
  'double_exponential_smoothing',
  'end',
  'exp',
  'floor',
  'histogram_avg',
  'histogram_count',
  'histogram_fraction',
  'histogram_quantile',
  'histogram_stddev',
  'histogram_stdvar',
  'histogram_sum',
  'holt_winters',
  'hour',
  'idelta',
  'increase',
  'info',
  'irate',
  'label_join',
  'label_replace',
  'last_over_time',
  'ln',
  'log10',
  'log2',
  'mad_over_time',
  'max_over_time',
  'min_over_time',
  'minute',
  'month',
  'pi',
  'predict_linear',
  'present_over_time',
  'quantile_over_time',
  'rad',
  'rate',
  'resets',
  'round',
  'scalar',
  'sgn',
  'sin',
  'sinh',
  'sort',
  'sort_by_label',
  'sort_by_label_desc',
  'sort_desc',
  'sqrt',
  'start',
  'stddev_over_time',
  'stdvar_over_time',
  'sum_over_time',
  'tan',
  'tanh',
  'time',
  'timestamp',
  'vector',
  'year',
]);

/** Keywords that take a parenthesised list of label names. */
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'inf', 'nan', ...GROUPING]);

interface Token {
  kind: 'ident' | 'string' | 'number' | 'punct';
  text: string;
}

const IDENT = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
// Numbers, durations (5m, 1h30m) and hex; a duration's unit letters must not start an identifier.
const NUMBER =
  /^(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*)?)/;
const OPERATORS = ['=~', '!~', '!=', '==', '>=', '<='];

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      while (j < expr.length && expr[j] !== c) {
        if (expr[j] === '\\' && c !== '`') {
          value += expr[j + 1] ?? '';
          j += 2;
        } else {
          value += expr[j];
          j++;
        }
      }
      if (j >= expr.length) throw new Error(`unterminated string in: ${expr}`);
      tokens.push({ kind: 'string', text: value });
      i = j + 1;
    } else {
      const rest = expr.slice(i);
      const number = NUMBER.exec(rest);
      const ident = IDENT.exec(rest);
      const op = OPERATORS.find((o) => rest.startsWith(o));
      if (number && /[0-9.]/.test(c)) {
        tokens.push({ kind: 'number', text: number[0] });
        i += number[0].length;
      } else if (ident) {
        tokens.push({ kind: 'ident', text: ident[0] });
        i += ident[0].length;
      } else {
        tokens.push({ kind: 'punct', text: op ?? c });
        i += (op ?? c).length;
      }
    }
  }
  return tokens;
}

/** Index of the bracket closing the one at `open`. */
function closing(tokens: Token[], open: number): number {
  const pairs: Record<string, string> = { '(': ')', '[': ']', '{': '}' };
  const want = pairs[tokens[open]!.text]!;
  let depth = 0;
  for (let i = open; i < tokens.length; i++) {
    if (tokens[i]!.kind !== 'punct') continue;
    if (tokens[i]!.text === tokens[open]!.text) depth++;
    else if (tokens[i]!.text === want && --depth === 0) return i;
  }
  throw new Error(`unbalanced ${tokens[open]!.text}`);
}

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  /** The metric name, bare or from a {__name__="..."} matcher. */
  metric: string;
  matchers: Matcher[];
}

/** The vector selectors of a PromQL expression: each metric name with its label matchers. */
export function selectors(expr: string): Selector[] {
  const tokens = tokenize(expr);
  const found: Selector[] = [];
  const matchersAt = (open: number): Matcher[] => {
    const list: Matcher[] = [];
    const end = closing(tokens, open);
    for (let i = open + 1; i < end; ) {
      const [label, op, value] = [tokens[i], tokens[i + 1], tokens[i + 2]];
      if (!label || !op || !value || !['=', '!=', '=~', '!~'].includes(op.text) || value.kind !== 'string') {
        throw new Error(`cannot read the label matchers in: ${expr}`);
      }
      list.push({ label: label.text, op: op.text as Matcher['op'], value: value.text });
      i += 3;
      if (tokens[i]?.text === ',') i++;
    }
    return list;
  };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const next = tokens[i + 1];
    if (token.kind === 'punct' && token.text === '[') {
      // A range or subquery: durations and a resolution, no names.
      i = closing(tokens, i);
    } else if (token.kind === 'punct' && token.text === '{') {
      const matchers = matchersAt(i);
      const name = matchers.find((m) => m.label === '__name__' && m.op === '=');
      if (!name) throw new Error(`a selector without a metric name in: ${expr}`);
      found.push({ metric: name.value, matchers: matchers.filter((m) => m !== name) });
      i = closing(tokens, i);
    } else if (token.kind === 'ident') {
      const word = token.text.toLowerCase();
      const call = next?.text === '(' || (AGGREGATIONS.has(token.text) && ['by', 'without'].includes(next?.text ?? ''));
      if (GROUPING.has(word)) {
        if (next?.text === '(') i = closing(tokens, i + 1);
      } else if (call) {
        if (!FUNCTIONS.has(token.text)) throw new Error(`unknown PromQL function ${token.text}() in: ${expr}`);
      } else if (!KEYWORDS.has(word)) {
        const matchers = next?.text === '{' ? matchersAt(i + 1) : [];
        found.push({ metric: token.text, matchers });
        if (next?.text === '{') i = closing(tokens, i + 1);
      }
    }
  }
  return found;
}

/**
 * A Grafana query as the PromQL Prometheus receives: `$__rate_interval` and the other built-in
 * intervals become 5m, 1m and 1h, and dashboard variables ($name, ${name}, [[name]]) their values.
 */
export function grafanaToPromQL(query: string, variables: Record<string, string>): string {
  const builtIn: Record<string, string> = {
    __rate_interval: '5m',
    __interval: '1m',
    __range: '1h',
    __interval_ms: '60000',
  };
  const values: Record<string, string> = { ...builtIn, ...variables };
  return query.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    if (!(name in values)) throw new Error(`unknown dashboard variable ${whole} in: ${query}`);
    return values[name]!;
  });
}

/**
 * The series selector of a Grafana `label_values(selector, label)` variable query; undefined for
 * `label_values(label)`.
 */
export function labelValuesSelector(query: string): string | undefined {
  const m = /^\s*label_values\(\s*(.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(query);
  if (m) return m[1];
  if (/^\s*label_values\(\s*[a-zA-Z_]\w*\s*\)\s*$/.test(query)) return undefined;
  throw new Error(`not a label_values() query: ${query}`);
}
