/** What the chart renders: env and secrets, probes, security, volumes, toggles and guard rails. */
import { describe, expect, it } from 'vitest';
import { find, get, kinds, render, renderNotes } from './render.js';
import type { Manifest } from './k8s-validate.js';

const container = (m: Manifest[]) => get(m, 'Deployment').spec.template.spec.containers[0];
const podSpec = (m: Manifest[]) => get(m, 'Deployment').spec.template.spec;
const envOf = (m: Manifest[]): Record<string, any> =>
  Object.fromEntries(
    container(m).env.map((e: { name: string; value?: string; valueFrom?: unknown }) => [
      e.name,
      e.value ?? e.valueFrom,
    ]),
  );

describe('default values (the seed deployment)', () => {
  let m: Manifest[];
  it('renders a Deployment, Service, ServiceAccount, PVC and the helm test pod only', async () => {
    m = await render();
    expect(kinds(m)).toEqual(['Deployment', 'PersistentVolumeClaim', 'Pod', 'Service', 'ServiceAccount']);
  });

  it('renders the FILES_S3_* variables the seed deployment used, credentials by secretKeyRef', () => {
    const env = envOf(m);
    expect(env).toMatchObject({
      FILES_STORE: 's3',
      FILES_S3_ENDPOINT: 'http://minio.model-storage.svc:9000',
      FILES_S3_BUCKET: 'llama-files',
      FILES_S3_REGION: 'us-east-1',
      FILES_S3_TLS_VERIFY: 'false',
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_ACCESS_KEY_ID: { secretKeyRef: { name: 'llama-files-credentials', key: 'accesskey' } },
      FILES_S3_SECRET_ACCESS_KEY: { secretKeyRef: { name: 'llama-files-credentials', key: 'secretkey' } },
      FILES_DATA_DIR: '/data',
      FILES_CATALOG_PATH: 'catalog.sqlite',
      PORT: '8080',
    });
    // Every value is a string: the API server rejects numbers and booleans in env values.
    for (const e of container(m).env) if ('value' in e) expect(typeof e.value, e.name).toBe('string');
    // Defaults stay the gateway's own when the chart has nothing to say.
    expect(env).not.toHaveProperty('FILES_S3_PREFIX');
    expect(env).not.toHaveProperty('FILES_S3_PART_SIZE');
    expect(env).not.toHaveProperty('FILES_CATALOG_URL');
    // No credential ever appears as a plain value.
    expect(JSON.stringify(m)).not.toMatch(/"name":"FILES_S3_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)","value"/);
  });

  it('probes /healthz for liveness and /readyz for readiness on the named http port', () => {
    const c = container(m);
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.startupProbe).toBeUndefined();
  });

  it('is OpenShift restricted-v2 compatible: no fixed UID/GID, non-root, no capabilities, read-only root', () => {
    const pod = podSpec(m);
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container(m).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    const all = JSON.stringify(m);
    for (const field of ['runAsUser', 'runAsGroup', 'fsGroup', 'privileged', 'hostNetwork', 'hostPath'])
      expect(all).not.toContain(`"${field}"`);
  });

  it('mounts an emptyDir at /tmp and the PVC at /data, and recreates the pod on update (ReadWriteOnce)', () => {
    const pod = podSpec(m);
    expect(container(m).volumeMounts).toEqual([
      { name: 'tmp', mountPath: '/tmp' },
      { name: 'data', mountPath: '/data' },
    ]);
    expect(pod.volumes).toEqual([
      { name: 'tmp', emptyDir: {} },
      { name: 'data', persistentVolumeClaim: { claimName: 'rel-files-gateway-data' } },
    ]);
    const pvc = get(m, 'PersistentVolumeClaim');
    expect(pvc.metadata.name).toBe('rel-files-gateway-data');
    expect(pvc.spec).toEqual({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
    expect(pvc.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
    expect(get(m, 'Deployment').spec.strategy.type).toBe('Recreate');
    expect(get(m, 'Deployment').spec.replicas).toBe(1);
  });

  it('mounts no API token anywhere', () => {
    expect(get(m, 'ServiceAccount').automountServiceAccountToken).toBe(false);
    expect(podSpec(m).automountServiceAccountToken).toBe(false);
    expect(podSpec(m).serviceAccountName).toBe('rel-files-gateway');
    expect(get(m, 'Pod').spec.automountServiceAccountToken).toBe(false);
  });

  it('keeps helm.sh/chart and the version out of selectors (they are immutable)', () => {
    const sel = get(m, 'Deployment').spec.selector.matchLabels;
    expect(sel).toEqual({ 'app.kubernetes.io/name': 'files-gateway', 'app.kubernetes.io/instance': 'rel' });
    expect(get(m, 'Service').spec.selector).toEqual(sel);
    expect(get(m, 'Deployment').spec.template.metadata.labels).toMatchObject(sel);
  });

  it('runs the image as built (no command override, so CMD node dist/main.js serve)', () => {
    const c = container(m);
    expect(c.image).toBe('files-gateway:0.1.0');
    expect(c.command).toBeUndefined();
    expect(c.args).toBeUndefined();
    // Longer than the gateway's own drain time, so Kubernetes does not SIGKILL a draining pod.
    expect(podSpec(m).terminationGracePeriodSeconds).toBeGreaterThan(Number(envOf(m).FILES_SHUTDOWN_TIMEOUT_SECONDS));
  });

  it('service "http" on 8080 targets the named port', () => {
    expect(get(m, 'Service').spec).toMatchObject({
      type: 'ClusterIP',
      ports: [{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }],
    });
  });
});

describe('S3 settings and custom secret names', () => {
  it('uses the configured Secret name and keys, CA bundle, prefix and part size', async () => {
    const m = await render({ valuesFile: 's3-custom-secret-values.yaml' });
    const env = envOf(m);
    expect(env).toMatchObject({
      FILES_S3_ENDPOINT: 'https://s3.storage.example.com',
      FILES_S3_BUCKET: 'team-files',
      FILES_S3_REGION: 'eu-west-1',
      FILES_S3_TLS_VERIFY: 'true',
      FILES_S3_FORCE_PATH_STYLE: 'false',
      FILES_S3_PREFIX: 'files-gateway/',
      FILES_S3_AUTO_CREATE_BUCKET: 'true',
      FILES_S3_PART_SIZE: '16MiB',
      FILES_S3_QUEUE_SIZE: '8',
      FILES_S3_ACCESS_KEY_ID: { secretKeyRef: { name: 'team-files-s3', key: 'AWS_ACCESS_KEY_ID' } },
      FILES_S3_SECRET_ACCESS_KEY: { secretKeyRef: { name: 'team-files-s3', key: 'AWS_SECRET_ACCESS_KEY' } },
      FILES_S3_CA_FILE: '/etc/files-gateway/s3-ca/ca-bundle.crt',
    });
    expect(container(m).volumeMounts).toContainEqual({
      name: 's3-ca',
      mountPath: '/etc/files-gateway/s3-ca',
      readOnly: true,
    });
    expect(podSpec(m).volumes).toContainEqual({ name: 's3-ca', configMap: { name: 'trusted-ca' } });
    // An existing claim is used, not created.
    expect(find(m, 'PersistentVolumeClaim')).toBeUndefined();
    expect(podSpec(m).volumes).toContainEqual({
      name: 'data',
      persistentVolumeClaim: { claimName: 'files-gateway-catalog' },
    });
  });

  it('without a Secret, sets no keys so the AWS default credential chain (IRSA) applies', async () => {
    const m = await render({ set: { 's3.existingSecret': '' } });
    expect(envOf(m)).not.toHaveProperty('FILES_S3_ACCESS_KEY_ID');
    expect(envOf(m)).not.toHaveProperty('FILES_S3_SECRET_ACCESS_KEY');
    expect(await renderNotes({ set: { 's3.existingSecret': '' } })).toMatch(/AWS default credential chain/);
  });

  it('the fs store renders no S3 variables', async () => {
    const m = await render({ valuesFile: 'fs-store-values.yaml' });
    const env = envOf(m);
    expect(env.FILES_STORE).toBe('fs');
    expect(Object.keys(env).filter((k) => k.startsWith('FILES_S3_'))).toEqual([]);
    expect(get(m, 'PersistentVolumeClaim').spec.resources.requests.storage).toBe('20Gi');
    expect(get(m, 'PersistentVolumeClaim').metadata.annotations).toBeUndefined();
  });

  it('without persistence /data is an emptyDir and NOTES warns that the catalog goes with the pod', async () => {
    const m = await render({ set: { 'persistence.enabled': false } });
    expect(find(m, 'PersistentVolumeClaim')).toBeUndefined();
    expect(podSpec(m).volumes).toContainEqual({ name: 'data', emptyDir: {} });
    expect(get(m, 'Deployment').spec.strategy.type).toBe('RollingUpdate');
    expect(await renderNotes({ set: { 'persistence.enabled': false } })).toMatch(
      /WARNING: persistence.enabled=false[\s\S]*reindex/,
    );
  });
});

describe('API keys and Uploads API limits', () => {
  const KEYS_FILE = '/etc/files-gateway/auth/api-keys';
  const testPod = (m: Manifest[]) => get(m, 'Pod').spec;

  it('without auth.existingSecret: no FILES_API_KEYS_FILE, no keys volume, nothing in the helm test pod', async () => {
    const m = await render();
    expect(envOf(m)).not.toHaveProperty('FILES_API_KEYS_FILE');
    expect(envOf(m)).not.toHaveProperty('FILES_API_KEYS');
    expect(JSON.stringify(m)).not.toContain('api-keys');
    expect(testPod(m).containers[0].env.map((e: { name: string }) => e.name)).toEqual(['FILES_URL', 'FILES_PURPOSE']);
  });

  it('with auth.existingSecret: the one Secret key mounted read-only and named by FILES_API_KEYS_FILE', async () => {
    const m = await render({ valuesFile: 'auth-values.yaml' });
    expect(envOf(m).FILES_API_KEYS_FILE).toBe(KEYS_FILE);
    const mount = { name: 'api-keys', mountPath: '/etc/files-gateway/auth', readOnly: true };
    const volume = {
      name: 'api-keys',
      secret: { secretName: 'files-gateway-api-keys', items: [{ key: 'api-keys', path: 'api-keys' }] },
    };
    expect(container(m).volumeMounts).toContainEqual(mount);
    // Exactly this: only the one key, and no defaultMode (a 0400 file would be root's, unreadable
    // by the pod's UID where no fsGroup is set).
    expect(podSpec(m).volumes).toContainEqual(volume);
    // The keys never travel as an env value.
    expect(JSON.stringify(m)).not.toMatch(/"name":"FILES_API_KEYS","value"/);
    // The helm test pod reads the same file, from the same Secret.
    expect(testPod(m).containers[0].env).toContainEqual({ name: 'FILES_API_KEYS_FILE', value: KEYS_FILE });
    expect(testPod(m).containers[0].volumeMounts).toContainEqual(mount);
    expect(testPod(m).volumes).toContainEqual(volume);
  });

  it('the Secret key defaults to "keys"; the Secret name may be a template', async () => {
    const m = await render({ values: { auth: { existingSecret: '{{ .Release.Name }}-api-keys' } } });
    expect(podSpec(m).volumes).toContainEqual({
      name: 'api-keys',
      secret: { secretName: 'rel-api-keys', items: [{ key: 'keys', path: 'api-keys' }] },
    });
  });

  it('NOTES explain the Bearer header, the Secret to create and the reload after a change', async () => {
    const notes = await renderNotes({ valuesFile: 'auth-values.yaml' });
    expect(notes).toContain('Authorization: Bearer');
    expect(notes).toContain('create secret generic files-gateway-api-keys --from-file=api-keys=');
    expect(notes).toContain('re-read when the kubelet updates the mounted Secret, without a restart');
    expect(notes).not.toContain('rollout restart');
    expect(await renderNotes()).not.toContain('Bearer');
  });

  it('renders FILES_MAX_UPLOAD_BYTES and FILES_MAX_PART_BYTES only when set', async () => {
    expect(envOf(await render())).not.toHaveProperty('FILES_MAX_UPLOAD_BYTES');
    expect(envOf(await render())).not.toHaveProperty('FILES_MAX_PART_BYTES');
    const env = envOf(await render({ valuesFile: 'auth-values.yaml' }));
    expect(env).toMatchObject({ FILES_MAX_UPLOAD_BYTES: '20GiB', FILES_MAX_PART_BYTES: '128MiB' });
  });

  it('prints sizes given as numbers as whole numbers (helm reads them as floats)', async () => {
    const env = envOf(
      await render({
        values: { config: { maxFileBytes: 5368709120, maxUploadBytes: 21474836480, maxPartBytes: 1048576 } },
      }),
    );
    expect(env).toMatchObject({
      FILES_MAX_FILE_BYTES: '5368709120',
      FILES_MAX_UPLOAD_BYTES: '21474836480',
      FILES_MAX_PART_BYTES: '1048576',
    });
  });
});

describe('toggles', () => {
  let off: Manifest[];
  it('are all off by default', async () => {
    off = await render();
    for (const kind of [
      'Route',
      'Ingress',
      'ServiceMonitor',
      'NetworkPolicy',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
    ]) {
      expect(find(off, kind), kind).toBeUndefined();
    }
  });

  it('route: an OpenShift Route to the http port, TLS edge, a long router timeout for uploads', async () => {
    const m = await render({ valuesFile: 'openshift-values.yaml' });
    const route = get(m, 'Route');
    expect(route.apiVersion).toBe('route.openshift.io/v1');
    expect(route.metadata.annotations['haproxy.router.openshift.io/timeout']).toBe('30m');
    expect(route.spec).toMatchObject({
      host: 'files.apps.example.com',
      to: { kind: 'Service', name: 'rel-files-gateway' },
      port: { targetPort: 'http' },
      tls: { termination: 'edge', insecureEdgeTerminationPolicy: 'Redirect' },
    });
    const plain = await render({ set: { 'route.enabled': true, 'route.tls.enabled': false } });
    expect(get(plain, 'Route').spec.tls).toBeUndefined();
    expect(get(plain, 'Route').spec.host).toBeUndefined();
    expect(get(plain, 'Route').metadata.annotations['haproxy.router.openshift.io/timeout']).toBe('10m');
  });

  it('ingress: body size left to the gateway, no request buffering, long timeouts, TLS', async () => {
    const m = await render({ valuesFile: 'ingress-values.yaml' });
    const ing = get(m, 'Ingress');
    expect(ing.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-body-size': '0',
      'nginx.ingress.kubernetes.io/proxy-request-buffering': 'off',
      'nginx.ingress.kubernetes.io/proxy-read-timeout': '1800',
      'nginx.ingress.kubernetes.io/proxy-send-timeout': '1800',
      'cert-manager.io/cluster-issuer': 'letsencrypt',
    });
    expect(ing.spec.ingressClassName).toBe('nginx');
    expect(ing.spec.tls).toEqual([{ secretName: 'files-example-com-tls', hosts: ['files.example.com'] }]);
    expect(ing.spec.rules[0]).toEqual({
      host: 'files.example.com',
      http: {
        paths: [
          {
            path: '/',
            pathType: 'Prefix',
            backend: { service: { name: 'rel-files-gateway', port: { name: 'http' } } },
          },
        ],
      },
    });
    expect(envOf(m).FILES_MAX_FILE_BYTES).toBe('2GiB');
  });

  it('serviceMonitor: scrapes /metrics on the http port with the Prometheus selector labels', async () => {
    const m = await render({ valuesFile: 'openshift-values.yaml' });
    const sm = get(m, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('prometheus');
    expect(sm.spec.endpoints).toEqual([{ port: 'http', path: '/metrics', interval: '15s', scrapeTimeout: '10s' }]);
    expect(sm.spec.selector.matchLabels).toEqual(get(m, 'Service').spec.selector);
    expect(sm.spec.namespaceSelector.matchNames).toEqual(['llama']);
  });

  it('networkPolicy: ingress only on http from the given peers, egress only DNS and S3', async () => {
    const m = await render({ valuesFile: 'networkpolicy-values.yaml' });
    const np = get(m, 'NetworkPolicy');
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress).toHaveLength(1);
    expect(np.spec.ingress[0].ports).toEqual([{ port: 'http', protocol: 'TCP' }]);
    expect(np.spec.ingress[0].from).toHaveLength(3);
    const egressPorts = np.spec.egress.flatMap((r: { ports: { port: number }[] }) => r.ports.map((p) => p.port));
    expect(egressPorts.sort()).toEqual([53, 53, 5353, 5353, 9000]);
    expect(np.spec.egress[1].to[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name']).toBe('model-storage');
    const open = await render({ set: { 'networkPolicy.enabled': true, 'networkPolicy.egress.restrict': false } });
    expect(get(open, 'NetworkPolicy').spec.policyTypes).toEqual(['Ingress']);
    expect(get(open, 'NetworkPolicy').spec.egress).toBeUndefined();
    expect(get(open, 'NetworkPolicy').spec.ingress[0].from).toBeUndefined();
  });

  it('pdb: maxUnavailable 1 by default (minAvailable 1 would block drains of a single pod)', async () => {
    const m = await render({ set: { 'pdb.enabled': true } });
    expect(get(m, 'PodDisruptionBudget').spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: { 'app.kubernetes.io/name': 'files-gateway', 'app.kubernetes.io/instance': 'rel' } },
    });
  });

  it('hpa with a PostgreSQL catalog: autoscaling/v2, no fixed replicas, no PVC, rolling updates', async () => {
    const m = await render({ valuesFile: 'postgres-ha-values.yaml' });
    const hpa = get(m, 'HorizontalPodAutoscaler');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec).toMatchObject({
      minReplicas: 2,
      maxReplicas: 6,
      scaleTargetRef: { kind: 'Deployment', name: 'rel-files-gateway' },
    });
    expect(hpa.spec.metrics.map((x: any) => [x.resource.name, x.resource.target.averageUtilization])).toEqual([
      ['cpu', 70],
      ['memory', 80],
    ]);
    expect(get(m, 'Deployment').spec.replicas).toBeUndefined();
    expect(get(m, 'Deployment').spec.strategy.type).toBe('RollingUpdate');
    expect(find(m, 'PersistentVolumeClaim')).toBeUndefined();
    expect(podSpec(m).volumes).toContainEqual({ name: 'data', emptyDir: {} });
    const env = envOf(m);
    expect(env.FILES_CATALOG_URL).toEqual({ secretKeyRef: { name: 'files-gateway-postgres', key: 'url' } });
    expect(env).not.toHaveProperty('FILES_CATALOG_PATH');
    expect(get(m, 'PodDisruptionBudget').spec.minAvailable).toBe(1);
    expect(get(m, 'PodDisruptionBudget').spec.maxUnavailable).toBeUndefined();
  });

  it('helm test pod can be switched off', async () => {
    expect(find(await render({ set: { 'tests.enabled': false } }), 'Pod')).toBeUndefined();
  });
});

describe('guard rails', () => {
  it.each([
    [{ replicaCount: 2 }, /replicaCount=2 needs a shared catalog[\s\S]*PostgreSQL/],
    [{ replicaCount: 3, 'persistence.enabled': false }, /replicaCount=3 needs a shared catalog/],
    [{ 'autoscaling.enabled': true }, /autoscaling.enabled=true needs a shared catalog[\s\S]*PostgreSQL/],
    [{ 'catalog.type': 'postgres' }, /catalog.postgres.existingSecret/],
    [
      { 'storage.type': 'fs', 'catalog.type': 'postgres', 'catalog.postgres.existingSecret': 'pg', replicaCount: 2 },
      /storage.type=s3/,
    ],
  ])('%o fails rendering', async (set, message) => {
    await expect(render({ set })).rejects.toThrow(message);
  });

  it('several replicas render with a PostgreSQL catalog', async () => {
    const m = await render({
      set: { replicaCount: 3, 'catalog.type': 'postgres', 'catalog.postgres.existingSecret': 'pg' },
    });
    expect(get(m, 'Deployment').spec.replicas).toBe(3);
  });

  it.each([
    [{ replicaCont: 2 }, /replicaCont/],
    [{ s3: { bucketName: 'x' } }, /bucketName/],
    [{ metrics: { servicemonitor: { enabled: true } } }, /servicemonitor/],
    [{ storage: { type: 'gcs' } }, /storage.type/],
    [{ replicaCount: -1 }, /replicaCount/],
    [{ route: { tls: { termination: 'terminate' } } }, /termination/],
    [{ config: { maxFileBytes: 'lots' } }, /maxFileBytes/],
    [{ config: { maxUploadBytes: '1TB!' } }, /maxUploadBytes/],
    [{ config: { maxPartBytes: 0 } }, /maxPartBytes/],
    [{ auth: { existingSecret: 'keys', keyKey: 'keys' } }, /keyKey/],
    [{ auth: { keysKey: '' } }, /keysKey/],
    [{ image: { pullPolicy: 'Sometimes' } }, /pullPolicy/],
  ])('values.schema.json rejects %o', async (values, message) => {
    await expect(render({ values })).rejects.toThrow(message);
  });
});

describe('NOTES.txt', () => {
  it('names the in-cluster URL, the LlamaStack OPENAI_BASE_URL, helm test and the Secret to create', async () => {
    const notes = await renderNotes();
    expect(notes).toContain('http://rel-files-gateway.llama.svc:8080/v1/files');
    expect(notes).toContain('OPENAI_BASE_URL=http://rel-files-gateway.llama.svc:8080/v1');
    expect(notes).toContain('helm test rel -n llama --logs');
    expect(notes).toContain('create secret generic llama-files-credentials');
    expect(notes).toContain('--from-literal=accesskey=');
    expect(notes).toContain('kubectl -n llama port-forward svc/rel-files-gateway 8080:8080');
  });

  it('points at the Route or the Ingress when one is enabled', async () => {
    expect(await renderNotes({ valuesFile: 'openshift-values.yaml' })).toContain(
      'oc get route rel-files-gateway -n llama',
    );
    expect(await renderNotes({ valuesFile: 'ingress-values.yaml' })).toContain('https://files.example.com/v1/files');
  });
});
