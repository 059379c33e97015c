/**
 * Validates rendered manifests against Kubernetes schemas, offline:
 *
 * 1. kubernetes-models (+ its prometheus-operator package) carries the OpenAPI schemas of every
 *    built-in kind as compiled validators: wrong types, missing required fields, bad enums.
 * 2. Those schemas do not reject unknown fields (a misspelled `imagePulPolicy` would pass, and the
 *    API server would silently drop it). The same package's TypeScript interfaces do: every
 *    manifest becomes an object literal typed with its interface, and the TypeScript compiler's
 *    excess-property check names any field the API does not have, at any depth.
 *
 * OpenShift's Route has no model package; its few fields are checked by hand.
 */
import path from 'node:path';
import ts from 'typescript';
import { ROOT } from './helm.js';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: {
    name?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [key: string]: unknown;
}

/** apiVersion + kind -> module that exports the model class and its I<Kind> interface. */
function modelModule(m: Manifest): string | undefined {
  const [group, version] = m.apiVersion.includes('/') ? m.apiVersion.split('/') : ['', m.apiVersion];
  if (group === 'route.openshift.io') return undefined;
  if (group === 'monitoring.coreos.com') return `@kubernetes-models/prometheus-operator/${group}/${version}/${m.kind}`;
  return group ? `kubernetes-models/${group}/${version}/${m.kind}` : `kubernetes-models/${version}/${m.kind}`;
}

const label = (m: Manifest) => `${m.kind}/${m.metadata?.name ?? '?'}`;

/** Schema validation (types, required fields, enums) with the kubernetes-models validators. */
async function schemaErrors(m: Manifest): Promise<string[]> {
  const mod = modelModule(m);
  if (mod === undefined) return routeErrors(m);
  type ModelClass = new (data: unknown) => { validate(): void };
  let Model: ModelClass | undefined;
  try {
    Model = ((await import(mod)) as Record<string, ModelClass | undefined>)[m.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) return [`${label(m)}: no schema for ${m.apiVersion} ${m.kind}`];
  try {
    new Model(m).validate();
    return [];
  } catch (err) {
    return [`${label(m)}: ${(err as Error).message}`];
  }
}

/** The Route fields the chart emits, after the route.openshift.io/v1 API reference. */
function routeErrors(m: Manifest): string[] {
  const errors: string[] = [];
  const known = (obj: Record<string, unknown> | undefined, keys: string[], at: string) => {
    for (const k of Object.keys(obj ?? {}))
      if (!keys.includes(k)) errors.push(`${label(m)}: ${at}.${k}: unknown field`);
  };
  if (m.kind !== 'Route' || m.apiVersion !== 'route.openshift.io/v1')
    return [`${label(m)}: unexpected ${m.apiVersion} ${m.kind}`];
  const spec = m.spec as Record<string, any> | undefined;
  if (!spec) return [`${label(m)}: spec is required`];
  known(m as Record<string, any>, ['apiVersion', 'kind', 'metadata', 'spec'], '');
  known(
    spec,
    ['host', 'subdomain', 'path', 'to', 'alternateBackends', 'port', 'tls', 'wildcardPolicy', 'httpHeaders'],
    'spec',
  );
  if (spec.to?.kind !== 'Service' || typeof spec.to?.name !== 'string')
    errors.push(`${label(m)}: spec.to must name a Service`);
  known(spec.to, ['kind', 'name', 'weight'], 'spec.to');
  known(spec.port, ['targetPort'], 'spec.port');
  if (spec.port && !['string', 'number'].includes(typeof spec.port.targetPort))
    errors.push(`${label(m)}: spec.port.targetPort is required`);
  if (spec.tls) {
    known(
      spec.tls,
      [
        'termination',
        'insecureEdgeTerminationPolicy',
        'certificate',
        'key',
        'caCertificate',
        'destinationCACertificate',
        'externalCertificate',
      ],
      'spec.tls',
    );
    if (!['edge', 'reencrypt', 'passthrough'].includes(spec.tls.termination))
      errors.push(`${label(m)}: spec.tls.termination is invalid`);
    if (![undefined, 'Allow', 'Redirect', 'None', ''].includes(spec.tls.insecureEdgeTerminationPolicy))
      errors.push(`${label(m)}: spec.tls.insecureEdgeTerminationPolicy is invalid`);
  }
  if (spec.path !== undefined && !String(spec.path).startsWith('/'))
    errors.push(`${label(m)}: spec.path must start with /`);
  if (spec.wildcardPolicy !== undefined && !['None', 'Subdomain'].includes(spec.wildcardPolicy))
    errors.push(`${label(m)}: spec.wildcardPolicy is invalid`);
  return errors;
}

/** Unknown fields in every manifest, found by the TypeScript compiler in one program. */
function unknownFieldErrors(manifests: Manifest[]): string[] {
  const typed = manifests.map((m, i) => ({ m, i, mod: modelModule(m) })).filter((x) => x.mod !== undefined);
  if (typed.length === 0) return [];
  const file = path.join(ROOT, 'test', 'chart', `__rendered_${process.pid}.ts`);
  const lines = typed.map(({ m, i, mod }) => {
    const imp = `import type { I${m.kind} as T${i} } from ${JSON.stringify(mod)};`;
    return `${imp}\nexport const m${i}: T${i} = ${JSON.stringify(m, null, 1)};`;
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    // YAML null means "unset" to the API server; only unknown names and wrong shapes matter here.
    strict: false,
    strictNullChecks: false,
  };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  const exists = host.fileExists.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : read(f));
  host.fileExists = (f) => path.resolve(f) === file || exists(f);
  const getSource = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang, ...rest) =>
    path.resolve(f) === file ? ts.createSourceFile(f, source, lang, true) : getSource(f, lang, ...rest);
  const program = ts.createProgram([file], options, host);
  const sf = program.getSourceFile(file)!;
  const diags = [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)];
  return diags.map((d) => {
    const { line } = d.start === undefined ? { line: 0 } : sf.getLineAndCharacterOfPosition(d.start);
    // Which manifest: the nearest `export const mN` above the error.
    const before = source
      .split('\n')
      .slice(0, line + 1)
      .reverse()
      .find((l) => l.startsWith('export const m'));
    const idx = Number(/^export const m(\d+)/.exec(before ?? '')?.[1] ?? -1);
    const m = manifests[idx];
    return `${m ? label(m) : '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n').split('\n')[0]}`;
  });
}

/** Every problem found in the manifests; empty means valid. */
export async function validateManifests(manifests: Manifest[]): Promise<string[]> {
  const errors: string[] = [];
  for (const m of manifests) {
    if (typeof m.apiVersion !== 'string' || typeof m.kind !== 'string') {
      errors.push(`a manifest without apiVersion/kind: ${JSON.stringify(m).slice(0, 80)}`);
      continue;
    }
    errors.push(...(await schemaErrors(m)));
  }
  errors.push(...unknownFieldErrors(manifests.filter((m) => typeof m.apiVersion === 'string')));
  return errors;
}
