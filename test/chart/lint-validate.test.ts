/**
 * helm lint --strict and helm template for every ci/*-values.yaml scenario, and every rendered
 * manifest validated against the Kubernetes schemas with unknown-field detection.
 */
import { describe, expect, it } from 'vitest';
import { validateManifests, type Manifest } from './k8s-validate.js';
import { CI_VALUES, get, kinds, lint, render } from './render.js';

describe('helm lint --strict', () => {
  it.each(CI_VALUES)('passes with ci/%s', async (file) => {
    const out = await lint({ valuesFile: file });
    expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
  });
});

describe('rendered manifests are valid Kubernetes objects', () => {
  it('ci/ holds the scenarios the chart promises', () => {
    for (const f of [
      'default',
      'openshift',
      'ingress',
      's3-custom-secret',
      'networkpolicy',
      'postgres-ha',
      'fs-store',
      'auth',
    ]) {
      expect(CI_VALUES).toContain(`${f}-values.yaml`);
    }
  });

  it.each(CI_VALUES)('ci/%s renders and validates', async (file) => {
    const manifests = await render({ valuesFile: file });
    expect(kinds(manifests)).toEqual(expect.arrayContaining(['Deployment', 'Service']));
    expect(await validateManifests(manifests)).toEqual([]);
  });
});

describe('the validator itself', () => {
  // Each mistake on its own, so a check that only reports the first problem still proves itself.
  let base: Manifest[];
  const mutate = async (edit: (m: Manifest[]) => void) => {
    base ??= await render({
      valuesFile: 'openshift-values.yaml',
      set: { 'networkPolicy.enabled': true, 'ingress.enabled': true },
    });
    const copy = structuredClone(base);
    edit(copy);
    return validateManifests(copy);
  };
  const container = (m: Manifest[]) => get(m, 'Deployment').spec.template.spec.containers[0];

  it('accepts the untouched render', async () => {
    expect(await mutate(() => {})).toEqual([]);
  });

  it.each([
    ['a misspelled container field', (m: Manifest[]) => (container(m).imagePulPolicy = 'Always'), /imagePulPolicy/],
    [
      'a misspelled pod field',
      (m: Manifest[]) => (get(m, 'Deployment').spec.template.spec.automountServiceAcountToken = false),
      /automountServiceAcountToken/,
    ],
    [
      'a misspelled securityContext field',
      (m: Manifest[]) => (container(m).securityContext.readOnlyRootFileSystem = true),
      /readOnlyRootFileSystem/,
    ],
    [
      'a misspelled Service port field',
      (m: Manifest[]) => (get(m, 'Service').spec.ports[0].protocoll = 'TCP'),
      /protocoll/,
    ],
    ['a misspelled top-level field', (m: Manifest[]) => (get(m, 'Service').specs = {}), /specs/],
    [
      'a misspelled ServiceMonitor field',
      (m: Manifest[]) => (get(m, 'ServiceMonitor').spec.endpoints[0].scrapeTimout = '5s'),
      /scrapeTimout/,
    ],
    ['a misspelled Ingress field', (m: Manifest[]) => (get(m, 'Ingress').spec.rules[0].hots = 'x'), /hots/],
    [
      'a misspelled NetworkPolicy field',
      (m: Manifest[]) => (get(m, 'NetworkPolicy').spec.policyType = ['Ingress']),
      /policyType/,
    ],
    ['a misspelled Route field', (m: Manifest[]) => (get(m, 'Route').spec.tls.terminaton = 'edge'), /terminaton/],
    ['a wrong type', (m: Manifest[]) => (get(m, 'Deployment').spec.replicas = 'two'), /replicas|number/],
    [
      'a port given as a number where a name is required',
      (m: Manifest[]) => (get(m, 'ServiceMonitor').spec.endpoints[0].port = 8080),
      /port|string/,
    ],
    ['a missing required field', (m: Manifest[]) => delete get(m, 'Deployment').spec.selector, /selector/],
    ['a bad enum value', (m: Manifest[]) => (get(m, 'Service').spec.ports[0].protocol = 'HTTP'), /protocol|HTTP/],
    ['a bad Route termination', (m: Manifest[]) => (get(m, 'Route').spec.tls.termination = 'terminate'), /termination/],
  ])('rejects %s', async (_what, edit, pattern) => {
    const errors = await mutate(edit);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).toMatch(pattern);
  });
});
