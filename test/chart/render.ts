/** Renders the chart with the real helm binary and parses the output (shared by the chart tests). */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { CHART, helmBin, helmEnv } from './helm.js';
import type { Manifest } from './k8s-validate.js';

const run = promisify(execFile);

export const KUBE_VERSION = '1.30.0';
export const CI_VALUES = fs
  .readdirSync(path.join(CHART, 'ci'))
  .filter((f) => f.endsWith('-values.yaml'))
  .sort();

export interface RenderOptions {
  /** A file under ci/ */
  valuesFile?: string;
  set?: Record<string, string | number | boolean>;
  /** Raw values as YAML/JSON text (for lists and maps). */
  values?: unknown;
  namespace?: string;
}

function args(opts: RenderOptions): string[] {
  const a = ['-n', opts.namespace ?? 'llama', '--kube-version', KUBE_VERSION];
  if (opts.valuesFile) a.push('-f', path.join(CHART, 'ci', opts.valuesFile));
  for (const [k, v] of Object.entries(opts.set ?? {})) a.push('--set', `${k}=${v}`);
  return a;
}

/** `helm` with the scratch HELM_* homes; rejects with helm's stderr on failure. */
export async function helm(argv: string[], input?: { valuesJson?: unknown }): Promise<string> {
  let tmp: string | undefined;
  if (input?.valuesJson !== undefined) {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-values-'));
    const file = path.join(tmp, 'values.json');
    fs.writeFileSync(file, JSON.stringify(input.valuesJson));
    argv = [...argv, '-f', file];
  }
  try {
    const { stdout } = await run(helmBin(), argv, { env: helmEnv(), maxBuffer: 32 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(e.stderr?.trim() || e.message);
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null && typeof m === 'object');
}

/** `helm template` (release "rel", namespace "llama" unless given) parsed into objects. */
export async function render(opts: RenderOptions = {}): Promise<Manifest[]> {
  return parseManifests(await helm(['template', 'rel', CHART, ...args(opts)], { valuesJson: opts.values }));
}

export async function lint(opts: RenderOptions = {}): Promise<string> {
  return helm(['lint', '--strict', CHART, ...args(opts)], { valuesJson: opts.values });
}

/**
 * NOTES.txt as helm would print it after install. `helm template` skips NOTES.txt and
 * `install --dry-run` needs a cluster, so a copy of the chart renders it inside a YAML block.
 */
export async function renderNotes(opts: RenderOptions = {}): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chart-notes-'));
  try {
    const copy = path.join(tmp, 'files-gateway');
    fs.cpSync(CHART, copy, { recursive: true });
    const notes = fs.readFileSync(path.join(copy, 'templates', 'NOTES.txt'), 'utf8');
    fs.rmSync(path.join(copy, 'templates', 'NOTES.txt'));
    fs.writeFileSync(path.join(copy, 'templates', '_notes.tpl'), `{{- define "test.notes" -}}\n${notes}{{- end }}\n`);
    fs.writeFileSync(path.join(copy, 'templates', 'notes.yaml'), 'notes: |\n{{ include "test.notes" . | indent 2 }}\n');
    const out = await helm(['template', 'rel', copy, ...args(opts), '--show-only', 'templates/notes.yaml'], {
      valuesJson: opts.values,
    });
    return (parseAllDocuments(out)[0]!.toJS() as { notes: string }).notes;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function find<T = any>(manifests: Manifest[], kind: string, name?: string): T | undefined {
  return manifests.find((m) => m.kind === kind && (name === undefined || m.metadata?.name === name)) as T | undefined;
}

export function get<T = any>(manifests: Manifest[], kind: string, name?: string): T {
  const m = find<T>(manifests, kind, name);
  if (m === undefined)
    throw new Error(`no ${kind}${name ? `/${name}` : ''} in: ${manifests.map((x) => x.kind).join(', ')}`);
  return m;
}

export function kinds(manifests: Manifest[]): string[] {
  return manifests.map((m) => m.kind).sort();
}
