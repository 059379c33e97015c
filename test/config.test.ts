import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseApiKeys, parseBytes, publicSettings } from '../src/config.js';

const MiB = 1024 * 1024;

describe('config', () => {
  it('has working defaults: fs store under ./data, 0.0.0.0:8080, 512 MiB files', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      store: 'fs',
      s3: undefined,
      maxFileBytes: 512 * MiB,
      logLevel: 'info',
    });
    expect(c.dataDir).toBe(path.resolve('data'));
    expect(c.catalog).toEqual({ type: 'sqlite', path: path.resolve('data', 'catalog.sqlite') });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads sizes with binary units', () => {
    expect(parseBytes('X', '1048576')).toBe(MiB);
    expect(parseBytes('X', '512MiB')).toBe(512 * MiB);
    expect(parseBytes('X', '64 mb')).toBe(64 * MiB);
    expect(parseBytes('X', '8GiB')).toBe(8 * 1024 * MiB);
    for (const bad of ['', 'lots', '1.5GiB', '-1', '10 parsecs'])
      expect(() => parseBytes('X', bad)).toThrow(ConfigError);
  });

  it("takes the deployment's FILES_S3_* variables as they are and picks the s3 store", () => {
    const c = loadConfig({
      FILES_S3_ENDPOINT: 'http://minio.model-storage.svc:9000/',
      FILES_S3_BUCKET: 'llama-files',
      FILES_S3_REGION: 'us-east-1',
      FILES_S3_TLS_VERIFY: 'false',
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_ACCESS_KEY_ID: 'minio',
      FILES_S3_SECRET_ACCESS_KEY: 'minio123',
      FILES_S3_PREFIX: 'files',
    });
    expect(c.store).toBe('s3');
    expect(c.s3).toMatchObject({
      endpoint: 'http://minio.model-storage.svc:9000',
      bucket: 'llama-files',
      region: 'us-east-1',
      tlsVerify: false,
      forcePathStyle: true,
      credentials: { accessKeyId: 'minio', secretAccessKey: 'minio123' },
      prefix: 'files/',
      autoCreateBucket: false,
      partSizeBytes: 8 * MiB,
      queueSize: 4,
    });
  });

  it('falls back to the AWS SDK variables, then to its default credential chain', () => {
    const aws = loadConfig({
      FILES_S3_BUCKET: 'b',
      AWS_ACCESS_KEY_ID: 'ak',
      AWS_SECRET_ACCESS_KEY: 'sk',
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL_S3: 'https://s3.example.test',
    });
    expect(aws.s3).toMatchObject({
      credentials: { accessKeyId: 'ak', secretAccessKey: 'sk' },
      region: 'eu-west-1',
      endpoint: 'https://s3.example.test',
    });
    expect(loadConfig({ FILES_S3_BUCKET: 'b' }).s3?.credentials).toBeUndefined();
    // Ours win over the SDK's.
    expect(loadConfig({ FILES_S3_BUCKET: 'b', FILES_S3_REGION: 'r1', AWS_REGION: 'r2' }).s3?.region).toBe('r1');
  });

  it('names the variable of every invalid value', () => {
    const cases: Record<string, string>[] = [
      { PORT: '70000' },
      { PORT: 'http' },
      { FILES_MAX_FILE_BYTES: '0' },
      { FILES_STORE: 'tape' },
      { FILES_STORE: 's3' }, // s3 without a bucket
      { FILES_S3_BUCKET: 'b', FILES_S3_TLS_VERIFY: 'maybe' },
      { FILES_S3_BUCKET: 'b', FILES_S3_ENDPOINT: 'minio:9000' },
      { FILES_S3_BUCKET: 'b', FILES_S3_PART_SIZE: '1MiB' },
      { FILES_S3_BUCKET: 'b', FILES_S3_ACCESS_KEY_ID: 'only-half' },
      { LOG_LEVEL: 'loud' },
    ];
    for (const env of cases) {
      const variable = Object.keys(env).at(-1)!;
      const err = (() => {
        try {
          loadConfig(env);
        } catch (e) {
          return e;
        }
      })();
      expect(err, JSON.stringify(env)).toBeInstanceOf(ConfigError);
      const expected =
        env.FILES_STORE === 's3'
          ? 'FILES_S3_BUCKET'
          : variable === 'FILES_S3_ACCESS_KEY_ID'
            ? 'FILES_S3_SECRET_ACCESS_KEY'
            : variable;
      expect((err as ConfigError).variable, JSON.stringify(env)).toBe(expected);
    }
  });

  it('caps uploads per tenant and sets a minimum upload rate, each with its range', () => {
    expect(loadConfig({}).limits).toMatchObject({
      maxConcurrentUploads: 64,
      maxConcurrentUploadsPerTenant: 16,
      minUploadBytesPerSecond: 1024,
      minUploadRateWindowMs: 30_000,
    });
    expect(
      loadConfig({
        FILES_MAX_CONCURRENT_UPLOADS_PER_TENANT: '0',
        FILES_MIN_UPLOAD_BYTES_PER_SECOND: '4KiB',
        FILES_MIN_UPLOAD_RATE_WINDOW_SECONDS: '10',
      }).limits,
    ).toMatchObject({ maxConcurrentUploadsPerTenant: 0, minUploadBytesPerSecond: 4096, minUploadRateWindowMs: 10_000 });
    expect(loadConfig({ FILES_MIN_UPLOAD_BYTES_PER_SECOND: '0' }).limits.minUploadBytesPerSecond).toBe(0);
    const refused: [string, string, RegExp][] = [
      ['FILES_MAX_CONCURRENT_UPLOADS_PER_TENANT', '-1', /not a whole number/],
      ['FILES_MAX_CONCURRENT_UPLOADS_PER_TENANT', '100001', /outside 0\.\.100000/],
      ['FILES_MIN_UPLOAD_BYTES_PER_SECOND', 'fast', /not a size/],
      ['FILES_MIN_UPLOAD_RATE_WINDOW_SECONDS', '0', /outside 1\.\.3600/],
      ['FILES_MIN_UPLOAD_RATE_WINDOW_SECONDS', '1.5', /not a whole number/],
    ];
    for (const [variable, value, message] of refused) {
      const load = () => loadConfig({ [variable]: value });
      expect(load, `${variable}=${value}`).toThrow(ConfigError);
      expect(load).toThrow(message);
      try {
        load();
      } catch (err) {
        expect((err as ConfigError).variable).toBe(variable);
      }
    }
  });

  it('reads API keys from FILES_API_KEYS and FILES_API_KEYS_FILE, with optional tenants', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keys-'));
    const file = path.join(dir, 'keys');
    await fs.writeFile(
      file,
      '# team keys\nsk-file-key-0001 team-a\n\n  sk-file-key-0002   team-b  # rotated 2026-11\nsk-file-key-0003\n',
    );
    const c = loadConfig({ FILES_API_KEYS_FILE: file, FILES_API_KEYS: 'sk-env-key-0001 team-a, sk-env-key-0002' });
    expect(c.apiKeys).toEqual([
      { key: 'sk-file-key-0001', tenant: 'team-a', service: false },
      { key: 'sk-file-key-0002', tenant: 'team-b', service: false },
      { key: 'sk-file-key-0003', tenant: '', service: false },
      { key: 'sk-env-key-0001', tenant: 'team-a', service: false },
      { key: 'sk-env-key-0002', tenant: '', service: false },
    ]);
    expect(loadConfig({}).apiKeys).toEqual([]);
    const bad: [Record<string, string>, string][] = [
      [{ FILES_API_KEYS: 'short' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 bad/tenant' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 a b' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 a, sk-long-enough-1 b' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS_FILE: path.join(dir, 'missing') }, 'FILES_API_KEYS_FILE'],
    ];
    await fs.writeFile(path.join(dir, 'empty'), '# nothing yet\n');
    bad.push([{ FILES_API_KEYS_FILE: path.join(dir, 'empty') }, 'FILES_API_KEYS_FILE']);
    expectKeyErrors(bad);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads `key *` as a service key (default tenant until a request names one), in the keys file and FILES_API_KEYS', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'keys-'));
    const file = path.join(dir, 'keys');
    await fs.writeFile(
      file,
      'sk-llamastack-0123456789 *   # the LlamaStack server\nsk-team-a-0123456789 team-a\nsk-llamastack-0123456789 *\n',
    );
    expect(loadConfig({ FILES_API_KEYS_FILE: file, FILES_API_KEYS: 'sk-env-service-0001 *' }).apiKeys).toEqual([
      { key: 'sk-llamastack-0123456789', tenant: '', service: true },
      { key: 'sk-team-a-0123456789', tenant: 'team-a', service: false },
      { key: 'sk-llamastack-0123456789', tenant: '', service: true },
      { key: 'sk-env-service-0001', tenant: '', service: true },
    ]);
    expect(parseApiKeys('FILES_API_KEYS', 'sk-long-enough-1 *')).toEqual([
      { key: 'sk-long-enough-1', tenant: '', service: true },
    ]);
    const bad: [Record<string, string>, string][] = [
      // The same key as a service key and as a tenant's (or the default tenant's) key.
      [{ FILES_API_KEYS: 'sk-long-enough-1 *, sk-long-enough-1 alice' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 alice, sk-long-enough-1 *' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 *, sk-long-enough-1' }, 'FILES_API_KEYS'],
      // `*` is the whole tenant field: a tenant name containing it is still invalid.
      [{ FILES_API_KEYS: 'sk-long-enough-1 **' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 team*' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'sk-long-enough-1 * alice' }, 'FILES_API_KEYS'],
      [{ FILES_API_KEYS: 'short *' }, 'FILES_API_KEYS'],
    ];
    await fs.writeFile(file, 'sk-long-enough-1 *\n');
    bad.push([{ FILES_API_KEYS_FILE: file, FILES_API_KEYS: 'sk-long-enough-1 alice' }, 'FILES_API_KEYS_FILE']);
    expectKeyErrors(bad);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('publishes the storage settings without credentials, the CA file or the data folder', () => {
    const s3 = loadConfig({
      FILES_DATA_DIR: '/srv/files-data',
      FILES_S3_ENDPOINT: 'http://minio.model-storage.svc:9000/',
      FILES_S3_BUCKET: 'llama-files',
      FILES_S3_TLS_VERIFY: 'false',
      FILES_S3_FORCE_PATH_STYLE: 'true',
      FILES_S3_CA_FILE: '/etc/ca/bundle.pem',
      FILES_S3_ACCESS_KEY_ID: 'AKIAEXAMPLEACCESSKEY',
      FILES_S3_SECRET_ACCESS_KEY: 'secret-example-value-000000',
      FILES_MAX_FILE_BYTES: '123',
    });
    expect(publicSettings(s3)).toEqual({
      store: 's3',
      s3: {
        endpoint: 'http://minio.model-storage.svc:9000',
        bucket: 'llama-files',
        region: 'us-east-1',
        forcePathStyle: true,
        tlsVerify: false,
        prefix: '',
      },
      maxFileBytes: 123,
    });
    const text = JSON.stringify(publicSettings(s3));
    for (const hidden of ['AKIAEXAMPLEACCESSKEY', 'secret-example-value', '/etc/ca', '/srv/files-data'])
      expect(text).not.toContain(hidden);
    // The AWS default endpoint is null; a user:password written into the endpoint is dropped.
    expect(publicSettings(loadConfig({ FILES_S3_BUCKET: 'b', FILES_S3_PREFIX: 'gw' })).s3).toMatchObject({
      endpoint: null,
      prefix: 'gw/',
      forcePathStyle: false,
      tlsVerify: true,
    });
    expect(
      publicSettings(loadConfig({ FILES_S3_BUCKET: 'b', FILES_S3_ENDPOINT: 'https://user:pa55@s3.example.com:9000' }))
        .s3?.endpoint,
    ).toBe('https://s3.example.com:9000');
    expect(publicSettings(loadConfig({ FILES_DATA_DIR: '/srv/files-data' }))).toEqual({
      store: 'fs',
      s3: null,
      maxFileBytes: 512 * 1024 * 1024,
    });
  });

  it('never puts a secret in an error message', () => {
    try {
      loadConfig({ FILES_S3_BUCKET: 'b', FILES_S3_SECRET_ACCESS_KEY: 'super-secret-value' });
      expect.unreachable();
    } catch (e) {
      expect(String(e)).not.toContain('super-secret-value');
    }
  });

  it('picks the catalog from FILES_CATALOG_URL: SQLite by path or sqlite:, PostgreSQL by postgres://', () => {
    const data = path.resolve('d');
    const catalog = (env: Record<string, string>) => loadConfig({ FILES_DATA_DIR: 'd', ...env }).catalog;
    expect(catalog({ FILES_CATALOG_PATH: 'meta.db' })).toEqual({ type: 'sqlite', path: path.join(data, 'meta.db') });
    expect(catalog({ FILES_CATALOG_URL: 'meta.db' })).toEqual({ type: 'sqlite', path: path.join(data, 'meta.db') });
    expect(catalog({ FILES_CATALOG_URL: 'sqlite:meta.db' })).toEqual({
      type: 'sqlite',
      path: path.join(data, 'meta.db'),
    });
    expect(catalog({ FILES_CATALOG_URL: 'sqlite:///var/lib/meta.db' })).toEqual({
      type: 'sqlite',
      path: '/var/lib/meta.db',
    });
    const url = 'postgresql://files:p%40ss@db.example:5432/files?sslmode=verify-full';
    expect(catalog({ FILES_CATALOG_URL: url })).toEqual({ type: 'postgres', url, poolSize: 10 });
    expect(catalog({ FILES_CATALOG_URL: 'postgres://db/files', FILES_CATALOG_POOL_SIZE: '3' })).toMatchObject({
      poolSize: 3,
    });
    for (const [env, message] of [
      [{ FILES_CATALOG_URL: 'mysql://root:hunter2-secret@db/files' }, /FILES_CATALOG_URL: "mysql:" is not a catalog/],
      [{ FILES_CATALOG_URL: 'postgres://user:hunter2-secret@[bad/files' }, /FILES_CATALOG_URL: is not a valid URL/],
      [{ FILES_CATALOG_URL: 'sqlite:' }, /FILES_CATALOG_URL: sqlite: needs a file path/],
      [{ FILES_CATALOG_URL: 'postgres://db/files', FILES_CATALOG_POOL_SIZE: '0' }, /FILES_CATALOG_POOL_SIZE/],
    ] as const) {
      const err = (() => {
        try {
          catalog(env);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect(String(err)).toMatch(message);
      expect(String(err)).not.toContain('hunter2-secret');
    }
  });

  it('proxies downloads by default; presigned redirects need the s3 store and a TTL within 1 s..7 days', () => {
    const s3 = { FILES_S3_BUCKET: 'llama-files', FILES_S3_ENDPOINT: 'http://minio.model-storage.svc:9000' };
    expect(loadConfig({}).downloads).toEqual({ redirect: 'off', urlTtlSeconds: 300 });
    expect(loadConfig(s3).downloads).toEqual({ redirect: 'off', urlTtlSeconds: 300 });
    expect(loadConfig({ ...s3, FILES_DOWNLOAD_REDIRECT: 'off' }).downloads.redirect).toBe('off');
    const presigned = loadConfig({
      ...s3,
      FILES_DOWNLOAD_REDIRECT: 'presigned',
      FILES_DOWNLOAD_URL_TTL_SECONDS: '60',
      FILES_S3_PUBLIC_ENDPOINT: 'https://s3.example.com/',
    });
    expect(presigned.downloads).toEqual({ redirect: 'presigned', urlTtlSeconds: 60 });
    expect(presigned.s3).toMatchObject({
      endpoint: 'http://minio.model-storage.svc:9000',
      publicEndpoint: 'https://s3.example.com',
    });
    // unset: presigned URLs name the endpoint the gateway uses
    expect(loadConfig({ ...s3, FILES_DOWNLOAD_REDIRECT: 'presigned' }).s3?.publicEndpoint).toBeUndefined();
    expect(loadConfig({ ...s3, FILES_DOWNLOAD_URL_TTL_SECONDS: '604800' }).downloads.urlTtlSeconds).toBe(604_800);

    const failure = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error(`loaded: ${JSON.stringify(env)}`);
    };
    for (const [env, variable, message] of [
      [{ FILES_DOWNLOAD_REDIRECT: 'presigned' }, 'FILES_DOWNLOAD_REDIRECT', /needs the s3 store \(the store is fs\)/],
      [
        { ...s3, FILES_STORE: 'fs', FILES_DOWNLOAD_REDIRECT: 'presigned' },
        'FILES_DOWNLOAD_REDIRECT',
        /the store is fs/,
      ],
      [{ ...s3, FILES_DOWNLOAD_REDIRECT: 'redirect' }, 'FILES_DOWNLOAD_REDIRECT', /not one of off, presigned/],
      [{ ...s3, FILES_DOWNLOAD_URL_TTL_SECONDS: '0' }, 'FILES_DOWNLOAD_URL_TTL_SECONDS', /outside 1\.\.604800/],
      [{ ...s3, FILES_DOWNLOAD_URL_TTL_SECONDS: '604801' }, 'FILES_DOWNLOAD_URL_TTL_SECONDS', /outside/],
      [{ ...s3, FILES_DOWNLOAD_URL_TTL_SECONDS: '5m' }, 'FILES_DOWNLOAD_URL_TTL_SECONDS', /not a whole number/],
      [{ ...s3, FILES_S3_PUBLIC_ENDPOINT: 's3.example.com' }, 'FILES_S3_PUBLIC_ENDPOINT', /not a URL/],
      [{ ...s3, FILES_S3_PUBLIC_ENDPOINT: 'ftp://s3.example.com' }, 'FILES_S3_PUBLIC_ENDPOINT', /http/],
    ] as const) {
      const err = failure(env);
      expect(err, JSON.stringify(env)).toBeInstanceOf(ConfigError);
      expect(err.variable).toBe(variable);
      expect(String(err)).toMatch(message);
    }
  });
});

/** Each environment fails to load with a ConfigError naming `variable`, and never repeats the key. */
function expectKeyErrors(cases: [Record<string, string>, string][]): void {
  for (const [env, variable] of cases) {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err, JSON.stringify(env)).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable, JSON.stringify(env)).toBe(variable);
    expect(String(err)).not.toContain('sk-long-enough-1');
  }
}

describe('FILES_S3_PAYLOAD_SIGNING', () => {
  const s3 = (env: Record<string, string>) => loadConfig({ FILES_STORE: 's3', FILES_S3_BUCKET: 'b', ...env }).s3!;

  it('signs payloads over plain HTTP only, by default', () => {
    expect(s3({ FILES_S3_ENDPOINT: 'http://minio:9000' }).signPayload).toBe(true);
    expect(s3({ FILES_S3_ENDPOINT: 'https://minio:9000' }).signPayload).toBe(false);
    expect(s3({ FILES_S3_ENDPOINT: 'HTTP://minio:9000' }).signPayload).toBe(true);
    // no endpoint: AWS S3 itself, over HTTPS
    expect(s3({}).signPayload).toBe(false);
  });

  it('follows an explicit choice', () => {
    expect(s3({ FILES_S3_ENDPOINT: 'https://s3', FILES_S3_PAYLOAD_SIGNING: 'signed' }).signPayload).toBe(true);
    expect(s3({ FILES_S3_ENDPOINT: 'http://s3', FILES_S3_PAYLOAD_SIGNING: 'unsigned' }).signPayload).toBe(false);
  });

  it('refuses anything else, naming the variable', () => {
    expect(() => s3({ FILES_S3_PAYLOAD_SIGNING: 'sometimes' })).toThrow(
      /FILES_S3_PAYLOAD_SIGNING.*auto, signed, unsigned/,
    );
  });
});
