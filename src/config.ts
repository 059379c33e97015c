/**
 * The one place that reads the environment. Everything else receives a frozen Config.
 * Invalid values stop start-up with a ConfigError naming the variable.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export interface S3Config {
  bucket: string;
  /** Undefined means the SDK's default (AWS) endpoint resolution. */
  endpoint: string | undefined;
  /** The endpoint presigned download URLs name (clients fetch from it); undefined: `endpoint`. */
  publicEndpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  tlsVerify: boolean;
  caFile: string | undefined;
  /** Undefined means the AWS SDK default credential chain. */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Key prefix; empty puts objects at the bucket root under their file id, like LlamaStack's remote::s3. */
  prefix: string;
  autoCreateBucket: boolean;
  partSizeBytes: number;
  queueSize: number;
  /** Parts on their way to S3 at once across all uploads: with one filling buffer per upload, the bound on part memory. */
  maxPartsInFlight: number;
  /**
   * Whether part bodies carry their SHA-256 in the SigV4 signature (S3 checks it) or are sent as
   * UNSIGNED-PAYLOAD, which leaves the bytes' integrity to TLS: resolved from
   * FILES_S3_PAYLOAD_SIGNING, `auto` signing only over plain HTTP.
   */
  signPayload: boolean;
}

/**
 * A client key and the tenant whose files it reaches ('' is the default tenant). A service key
 * (tenant `*` in the keys file) belongs to a trusted service that names, per request, the tenant it
 * acts for (the OpenAI-Project header); without one it is the default tenant.
 */
export interface ApiKey {
  key: string;
  tenant: string;
  service: boolean;
}

export interface Config {
  host: string;
  port: number;
  logLevel: string;
  dataDir: string;
  store: 'fs' | 's3';
  s3: S3Config | undefined;
  catalog: CatalogConfig;
  maxFileBytes: number;
  /** Uploads API: the most bytes one upload may declare, and the most one part may carry. */
  maxUploadBytes: number;
  maxPartBytes: number;
  sweepIntervalMs: number;
  shutdownTimeoutMs: number;
  /** Empty: no authentication, every request is the default tenant. */
  apiKeys: readonly ApiKey[];
  /**
   * FILES_API_KEYS_FILE: the gateway re-reads it when it changes (a mounted Secret is updated in
   * place), with `envApiKeys` after its keys.
   */
  apiKeysFile: string | undefined;
  /** The keys of FILES_API_KEYS, which do not change while the process runs. */
  envApiKeys: readonly ApiKey[];
  /** How old an unfinished write (S3 multipart upload, blob without metadata) must be before `reindex --prune` removes it. */
  leftoverGraceMs: number;
  limits: Limits;
  downloads: DownloadsConfig;
  /**
   * GLIBC_TUNABLES: glibc reads it before the process starts
   * (docs/operations.md#memory-allocator-and-node-flags); it is here only so the start-up line can
   * say which allocator settings the process runs with.
   */
  glibcTunables: string | undefined;
}

/**
 * How GET .../files/{id}/content answers: `off` streams the bytes through the gateway; `presigned`
 * answers 302 with a short-lived presigned URL of the object (S3 store only), so the bytes skip it.
 */
export interface DownloadsConfig {
  redirect: 'off' | 'presigned';
  /** Lifetime of a presigned URL; never longer than the file's own. */
  urlTtlSeconds: number;
}

/**
 * Caps that keep one client, or too many, from taking the process down
 * (docs/operations.md#limits-load-shedding-and-recovery-after-a-crash).
 */
export interface Limits {
  /** POST /files and upload parts in progress at once; more are shed with 503. */
  maxConcurrentUploads: number;
  /** Of those, how many one tenant may hold (0: no per-tenant cap); an open gateway has one tenant and no such cap. */
  maxConcurrentUploadsPerTenant: number;
  /** An upload body that delivers fewer than this many bytes per second over a window is cut (0: never). */
  minUploadBytesPerSecond: number;
  minUploadRateWindowMs: number;
  /** Busboy limits per form. */
  multipart: { fields: number; fieldSize: number; parts: number; headerPairs: number };
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  /** A socket that neither sends nor takes a byte this long, while the client owes us one, is cut. */
  idleTimeoutMs: number;
  /** @fastify/under-pressure thresholds; 0 turns one off (the default: right values depend on the deployment). */
  maxEventLoopDelayMs: number;
  maxHeapUsedBytes: number;
  maxRssBytes: number;
}

type Env = Record<string, string | undefined>;

/**
 * Every environment variable the gateway reads, in the order of docs/configuration.md. The readers
 * below take only these names (the type refuses any other, and `read` throws on one that slips past
 * it), so a new variable starts here; test/config-docs.test.ts then holds the documentation's table
 * and the Helm chart to this list.
 */
export const VARIABLES = [
  'PORT',
  'HOST',
  'LOG_LEVEL',
  'FILES_DATA_DIR',
  'FILES_STORE',
  'FILES_CATALOG_URL',
  'FILES_CATALOG_PATH',
  'FILES_CATALOG_POOL_SIZE',
  'FILES_MAX_FILE_BYTES',
  'FILES_MAX_UPLOAD_BYTES',
  'FILES_MAX_PART_BYTES',
  'FILES_SWEEP_INTERVAL_SECONDS',
  'FILES_SHUTDOWN_TIMEOUT_SECONDS',
  'FILES_LEFTOVER_GRACE_SECONDS',
  'FILES_API_KEYS_FILE',
  'FILES_API_KEYS',
  'FILES_MAX_CONCURRENT_UPLOADS',
  'FILES_MAX_CONCURRENT_UPLOADS_PER_TENANT',
  'FILES_MIN_UPLOAD_BYTES_PER_SECOND',
  'FILES_MIN_UPLOAD_RATE_WINDOW_SECONDS',
  'FILES_MULTIPART_MAX_FIELDS',
  'FILES_MULTIPART_MAX_FIELD_BYTES',
  'FILES_MULTIPART_MAX_PARTS',
  'FILES_MULTIPART_MAX_HEADER_PAIRS',
  'FILES_MAX_HEADER_BYTES',
  'FILES_HEADERS_TIMEOUT_SECONDS',
  'FILES_IDLE_TIMEOUT_SECONDS',
  'FILES_MAX_EVENT_LOOP_DELAY_MS',
  'FILES_MAX_HEAP_USED_BYTES',
  'FILES_MAX_RSS_BYTES',
  'FILES_DOWNLOAD_REDIRECT',
  'FILES_DOWNLOAD_URL_TTL_SECONDS',
  'FILES_S3_ENDPOINT',
  'AWS_ENDPOINT_URL_S3',
  'AWS_ENDPOINT_URL',
  'FILES_S3_BUCKET',
  'FILES_S3_REGION',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'FILES_S3_ACCESS_KEY_ID',
  'AWS_ACCESS_KEY_ID',
  'FILES_S3_SECRET_ACCESS_KEY',
  'AWS_SECRET_ACCESS_KEY',
  'FILES_S3_TLS_VERIFY',
  'FILES_S3_CA_FILE',
  'FILES_S3_FORCE_PATH_STYLE',
  'FILES_S3_PREFIX',
  'FILES_S3_AUTO_CREATE_BUCKET',
  'FILES_S3_PART_SIZE',
  'FILES_S3_QUEUE_SIZE',
  'FILES_S3_MAX_PARTS_IN_FLIGHT',
  'FILES_S3_PAYLOAD_SIGNING',
  'FILES_S3_PUBLIC_ENDPOINT',
  'GLIBC_TUNABLES',
] as const;

/** The name of an environment variable the gateway reads. */
export type Variable = (typeof VARIABLES)[number];

const KNOWN_VARIABLES: ReadonlySet<string> = new Set(VARIABLES);

const MiB = 1024 * 1024;
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: MiB,
  mb: MiB,
  mib: MiB,
  g: 1024 * MiB,
  gb: 1024 * MiB,
  gib: 1024 * MiB,
};

/** Reads a byte size: "1048576", "512MiB", "64 MB" (binary units throughout). */
export function parseBytes(variable: string, raw: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(raw);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new ConfigError(variable, `"${raw}" is not a size (examples: 1048576, 512MiB, 8GiB)`);
  const value = Number(m[1]) * unit;
  if (!Number.isSafeInteger(value)) throw new ConfigError(variable, `"${raw}" is too large`);
  return value;
}

function read(env: Env, name: Variable): string | undefined {
  if (!KNOWN_VARIABLES.has(name)) throw new Error(`${name} is not in VARIABLES (src/config.ts): add it there first`);
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: Variable, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `"${raw}" is not a whole number`);
  const v = Number(raw);
  if (v < min || v > max) throw new ConfigError(name, `${v} is outside ${min}..${max}`);
  return v;
}

function bytes(env: Env, name: Variable, fallback: number, min: number): number {
  const raw = read(env, name);
  const v = raw === undefined ? fallback : parseBytes(name, raw);
  if (v < min) throw new ConfigError(name, `${v} bytes is below the minimum of ${min}`);
  return v;
}

function bool(env: Env, name: Variable, fallback: boolean): boolean {
  const raw = read(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `"${raw}" is not a boolean (true/false)`);
}

function oneOf<T extends string>(env: Env, name: Variable, allowed: readonly T[], fallback: T): T {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw))
    throw new ConfigError(name, `"${raw}" is not one of ${allowed.join(', ')}`);
  return raw as T;
}

function url(env: Env, name: Variable): string | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `"${raw}" is not a URL (example: http://minio.model-storage.svc:9000)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new ConfigError(name, `"${raw}" must be http:// or https://`);
  return raw.replace(/\/+$/, '');
}

/** A tenant's name, in a keys file and in the OpenAI-Project header. */
export const TENANT = /^[A-Za-z0-9._:@-]{1,64}$/;
/** The tenant field of a service key. */
const SERVICE = '*';
const MIN_KEY_LENGTH = 8;

/**
 * API keys, one entry per line (the keys file, a mounted Secret) or per comma (FILES_API_KEYS):
 * `key` alone for the default tenant, `key tenant`, or `key *` for a service key. Blank lines and
 * # comments are skipped. The messages never repeat a key.
 */
export function parseApiKeys(variable: string, text: string): ApiKey[] {
  const keys: ApiKey[] = [];
  text.split(/[\n,]/).forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [key, tenant = '', ...extra] = line.split(/\s+/);
    const where = `entry ${index + 1}`;
    if (extra.length > 0) throw new ConfigError(variable, `${where} has more than a key and a tenant`);
    if (key!.length < MIN_KEY_LENGTH)
      throw new ConfigError(variable, `${where}: a key needs at least ${MIN_KEY_LENGTH} characters`);
    if (tenant === SERVICE) {
      keys.push({ key: key!, tenant: '', service: true });
      return;
    }
    if (tenant !== '' && !TENANT.test(tenant)) {
      throw new ConfigError(
        variable,
        `${where}: tenant "${tenant}" must be 1-64 of A-Z a-z 0-9 . _ : @ -, or * for a service key`,
      );
    }
    keys.push({ key: key!, tenant, service: false });
  });
  return keys;
}

/**
 * The keys of a keys file followed by `fromEnv` (FILES_API_KEYS), checked as a whole. Start-up reads
 * the file through this, and so does the gateway when the file changes (a mounted Secret is updated
 * in place): an unreadable file, one without a key, or a bad entry is a ConfigError naming
 * FILES_API_KEYS_FILE and never a key.
 */
export function readApiKeysFile(file: string, fromEnv: readonly ApiKey[]): ApiKey[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      'FILES_API_KEYS_FILE',
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  return apiKeysOfFile(file, text, fromEnv);
}

/** readApiKeysFile for text already read from `file`. */
export function apiKeysOfFile(file: string, text: string, fromEnv: readonly ApiKey[]): ApiKey[] {
  const fromFile = parseApiKeys('FILES_API_KEYS_FILE', text);
  if (fromFile.length === 0)
    throw new ConfigError('FILES_API_KEYS_FILE', `${file} holds no key: refusing to run without authentication`);
  return checkedKeys('FILES_API_KEYS_FILE', [...fromFile, ...fromEnv]);
}

/** Refuses a key given for two tenants; the keys come back frozen. */
function checkedKeys(variable: string, keys: readonly ApiKey[]): ApiKey[] {
  // A service key's `*` is its own tenant field here: the same key as `*` and as a tenant is two tenants.
  const tenantOf = new Map<string, string>();
  for (const { key, tenant, service } of keys) {
    const field = service ? SERVICE : tenant;
    if (tenantOf.has(key) && tenantOf.get(key) !== field) {
      throw new ConfigError(variable, 'the same key is given for two tenants');
    }
    tenantOf.set(key, field);
  }
  return keys.map((k) => Object.freeze({ ...k }));
}

function apiKeys(env: Env): Pick<Config, 'apiKeys' | 'apiKeysFile' | 'envApiKeys'> {
  const file = read(env, 'FILES_API_KEYS_FILE');
  const fromEnv = checkedKeys('FILES_API_KEYS', parseApiKeys('FILES_API_KEYS', read(env, 'FILES_API_KEYS') ?? ''));
  return {
    apiKeys: Object.freeze(file !== undefined ? readApiKeysFile(file, fromEnv) : fromEnv),
    apiKeysFile: file,
    envApiKeys: Object.freeze(fromEnv),
  };
}

/** The S3 settings a client may see: never the credentials or the CA file's path. */
export interface PublicS3Settings {
  /** null: the SDK's default (AWS) endpoint. */
  endpoint: string | null;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
  tlsVerify: boolean;
  prefix: string;
}

/** What GET /v1/files-gateway/info reports: where the gateway keeps bytes and how large a file may be. */
export interface PublicSettings {
  store: 'fs' | 's3';
  /** null for the fs store (its folder is not reported). */
  s3: PublicS3Settings | null;
  maxFileBytes: number;
}

/** An endpoint without any user:password it was written with. */
function withoutUserInfo(endpoint: string): string {
  const parsed = new URL(endpoint);
  if (parsed.username === '' && parsed.password === '') return endpoint;
  parsed.username = '';
  parsed.password = '';
  return parsed.toString().replace(/\/+$/, '');
}

export function publicSettings(config: Pick<Config, 'store' | 's3' | 'maxFileBytes'>): PublicSettings {
  const s3 = config.store === 's3' ? config.s3 : undefined;
  return Object.freeze({
    store: config.store,
    s3: s3
      ? Object.freeze({
          endpoint: s3.endpoint === undefined ? null : withoutUserInfo(s3.endpoint),
          bucket: s3.bucket,
          region: s3.region,
          forcePathStyle: s3.forcePathStyle,
          tlsVerify: s3.tlsVerify,
          prefix: s3.prefix,
        })
      : null,
    maxFileBytes: config.maxFileBytes,
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function s3Config(env: Env): S3Config {
  const bucket = read(env, 'FILES_S3_BUCKET');
  if (bucket === undefined) throw new ConfigError('FILES_S3_BUCKET', 'required when FILES_STORE=s3');
  const accessKeyId = read(env, 'FILES_S3_ACCESS_KEY_ID') ?? read(env, 'AWS_ACCESS_KEY_ID');
  const secretAccessKey = read(env, 'FILES_S3_SECRET_ACCESS_KEY') ?? read(env, 'AWS_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError(
      accessKeyId === undefined ? 'FILES_S3_ACCESS_KEY_ID' : 'FILES_S3_SECRET_ACCESS_KEY',
      'set both the access key id and the secret access key, or neither (to use the AWS default credential chain)',
    );
  }
  const prefix = read(env, 'FILES_S3_PREFIX') ?? '';
  // S3 rejects parts under 5 MiB (except the last) and allows at most 10,000 parts: 5 MiB parts cap
  // an object at ~48.8 GiB, which is far above any size limit here.
  const partSizeBytes = bytes(env, 'FILES_S3_PART_SIZE', 8 * MiB, 5 * MiB);
  const endpoint = url(env, 'FILES_S3_ENDPOINT') ?? url(env, 'AWS_ENDPOINT_URL_S3') ?? url(env, 'AWS_ENDPOINT_URL');
  const signing = oneOf(env, 'FILES_S3_PAYLOAD_SIGNING', ['auto', 'signed', 'unsigned'], 'auto');
  return Object.freeze({
    bucket,
    endpoint,
    publicEndpoint: url(env, 'FILES_S3_PUBLIC_ENDPOINT'),
    region: read(env, 'FILES_S3_REGION') ?? read(env, 'AWS_REGION') ?? read(env, 'AWS_DEFAULT_REGION') ?? 'us-east-1',
    forcePathStyle: bool(env, 'FILES_S3_FORCE_PATH_STYLE', false),
    tlsVerify: bool(env, 'FILES_S3_TLS_VERIFY', true),
    caFile: read(env, 'FILES_S3_CA_FILE'),
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? Object.freeze({ accessKeyId, secretAccessKey })
        : undefined,
    prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`,
    autoCreateBucket: bool(env, 'FILES_S3_AUTO_CREATE_BUCKET', false),
    partSizeBytes,
    queueSize: int(env, 'FILES_S3_QUEUE_SIZE', 4, 1, 64),
    maxPartsInFlight: int(env, 'FILES_S3_MAX_PARTS_IN_FLIGHT', 6, 1, 1024),
    // no endpoint is AWS itself, over HTTPS
    signPayload:
      signing === 'signed' || (signing === 'auto' && endpoint !== undefined && new URL(endpoint).protocol === 'http:'),
  });
}

/**
 * An S3 object assembled from upload parts has every part but the last at least 5 MiB (see
 * planSegments), and S3 allows 10,000 parts: 10,000 x 5 MiB is the most an upload can hold.
 */
const MAX_UPLOAD_BYTES = 10_000 * 5 * MiB;

function uploadLimits(env: Env): { maxUploadBytes: number; maxPartBytes: number } {
  const maxUploadBytes = bytes(env, 'FILES_MAX_UPLOAD_BYTES', 8 * 1024 * MiB, 1);
  if (maxUploadBytes > MAX_UPLOAD_BYTES)
    throw new ConfigError(
      'FILES_MAX_UPLOAD_BYTES',
      `${maxUploadBytes} bytes is above the maximum of ${MAX_UPLOAD_BYTES} (10,000 S3 parts of 5 MiB)`,
    );
  return { maxUploadBytes, maxPartBytes: bytes(env, 'FILES_MAX_PART_BYTES', 64 * MiB, 1) };
}

export function loadLimits(env: Env = {}): Limits {
  return Object.freeze({
    maxConcurrentUploads: int(env, 'FILES_MAX_CONCURRENT_UPLOADS', 64, 1, 100_000),
    maxConcurrentUploadsPerTenant: int(env, 'FILES_MAX_CONCURRENT_UPLOADS_PER_TENANT', 16, 0, 100_000),
    minUploadBytesPerSecond: bytes(env, 'FILES_MIN_UPLOAD_BYTES_PER_SECOND', 1024, 0),
    minUploadRateWindowMs: int(env, 'FILES_MIN_UPLOAD_RATE_WINDOW_SECONDS', 30, 1, 3600) * 1000,
    multipart: Object.freeze({
      fields: int(env, 'FILES_MULTIPART_MAX_FIELDS', 20, 1, 1000),
      fieldSize: bytes(env, 'FILES_MULTIPART_MAX_FIELD_BYTES', 64 * 1024, 1),
      parts: int(env, 'FILES_MULTIPART_MAX_PARTS', 25, 2, 1000),
      headerPairs: int(env, 'FILES_MULTIPART_MAX_HEADER_PAIRS', 100, 1, 2000),
    }),
    maxHeaderBytes: bytes(env, 'FILES_MAX_HEADER_BYTES', 16 * 1024, 1024),
    headersTimeoutMs: int(env, 'FILES_HEADERS_TIMEOUT_SECONDS', 30, 1, 3600) * 1000,
    idleTimeoutMs: int(env, 'FILES_IDLE_TIMEOUT_SECONDS', 60, 1, 3600) * 1000,
    maxEventLoopDelayMs: int(env, 'FILES_MAX_EVENT_LOOP_DELAY_MS', 0, 0, 600_000),
    maxHeapUsedBytes: bytes(env, 'FILES_MAX_HEAP_USED_BYTES', 0, 0),
    maxRssBytes: bytes(env, 'FILES_MAX_RSS_BYTES', 0, 0),
  });
}

/** SigV4 refuses presigned URLs valid for more than 7 days. */
const MAX_URL_TTL_SECONDS = 7 * 86_400;

function downloadsConfig(env: Env, store: Config['store']): DownloadsConfig {
  const redirect = oneOf(env, 'FILES_DOWNLOAD_REDIRECT', ['off', 'presigned'] as const, 'off');
  if (redirect === 'presigned' && store !== 's3') {
    throw new ConfigError(
      'FILES_DOWNLOAD_REDIRECT',
      `presigned needs the s3 store (the store is ${store}): only S3 can hand clients a URL of the bytes`,
    );
  }
  return Object.freeze({
    redirect,
    urlTtlSeconds: int(env, 'FILES_DOWNLOAD_URL_TTL_SECONDS', 300, 1, MAX_URL_TTL_SECONDS),
  });
}

/** Where file metadata lives: a SQLite file (one process) or PostgreSQL (shared by replicas). */
export type CatalogConfig =
  | { type: 'sqlite'; path: string }
  | {
      type: 'postgres';
      /** With the password: hand it to the driver only, log the catalog's masked location. */
      url: string;
      poolSize: number;
    };

/**
 * FILES_CATALOG_URL: unset (FILES_CATALOG_PATH under the data folder), a path or sqlite:PATH
 * (relative to the data folder), or postgres:// / postgresql://. Messages never repeat the URL: it
 * may hold a password.
 */
function catalogConfig(env: Env, dataDir: string): CatalogConfig {
  const sqlite = (file: string): CatalogConfig => ({ type: 'sqlite', path: path.resolve(dataDir, file) });
  const raw = read(env, 'FILES_CATALOG_URL');
  if (raw === undefined) return sqlite(read(env, 'FILES_CATALOG_PATH') ?? 'catalog.sqlite');
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) return sqlite(raw);
  if (scheme === 'sqlite') {
    const file = raw.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file === '')
      throw new ConfigError(
        'FILES_CATALOG_URL',
        'sqlite: needs a file path (sqlite:catalog.sqlite, sqlite:///var/lib/files/catalog.sqlite)',
      );
    return sqlite(file);
  }
  if (scheme !== 'postgres' && scheme !== 'postgresql') {
    throw new ConfigError(
      'FILES_CATALOG_URL',
      `"${scheme}:" is not a catalog: use a file path, sqlite:PATH or postgres://user:password@host:5432/db`,
    );
  }
  if (!URL.canParse(raw))
    throw new ConfigError('FILES_CATALOG_URL', 'is not a valid URL (example: postgres://user:password@host:5432/db)');
  return { type: 'postgres', url: raw, poolSize: int(env, 'FILES_CATALOG_POOL_SIZE', 10, 1, 1000) };
}

export function loadConfig(env: Env = process.env): Config {
  const dataDir = path.resolve(read(env, 'FILES_DATA_DIR') ?? 'data');
  const store = oneOf(
    env,
    'FILES_STORE',
    ['fs', 's3'] as const,
    read(env, 'FILES_S3_BUCKET') !== undefined ? 's3' : 'fs',
  );
  return Object.freeze({
    host: read(env, 'HOST') ?? '0.0.0.0',
    port: int(env, 'PORT', 8080, 0, 65535),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    dataDir,
    store,
    s3: store === 's3' ? s3Config(env) : undefined,
    catalog: catalogConfig(env, dataDir),
    maxFileBytes: bytes(env, 'FILES_MAX_FILE_BYTES', 512 * MiB, 1),
    ...uploadLimits(env),
    sweepIntervalMs: int(env, 'FILES_SWEEP_INTERVAL_SECONDS', 60, 1, 86_400) * 1000,
    shutdownTimeoutMs: int(env, 'FILES_SHUTDOWN_TIMEOUT_SECONDS', 25, 0, 3600) * 1000,
    ...apiKeys(env),
    leftoverGraceMs: int(env, 'FILES_LEFTOVER_GRACE_SECONDS', 86_400, 0, 30 * 86_400) * 1000,
    limits: loadLimits(env),
    downloads: downloadsConfig(env, store),
    glibcTunables: read(env, 'GLIBC_TUNABLES'),
  });
}
