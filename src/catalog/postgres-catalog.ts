import pg from 'pg';
import { GatewayError, unavailable } from '../errors.js';
import {
  type AddPartOutcome,
  type Catalog,
  type FileRecord,
  type ListQuery,
  type RecordShape,
  type UploadPartRecord,
  type UploadRecord,
  type UploadStatus,
  REMOVAL_CLAIMED,
} from './catalog.js';
import { migratePostgres } from './postgres-migrations.js';
import {
  FILE_COLS,
  FILE_COLUMNS,
  type PartRow,
  pageKey,
  type Row,
  type ShapeTemplate,
  type UploadRow,
  shapeTemplate,
  toPart,
  toRecord,
  toUpload,
} from './rows.js';

/** First key of every advisory lock this gateway takes, so its locks never meet another application's. */
const LOCK_SPACE = 0x66_67_77_31; // "fgw1"

const UPLOAD_COLS =
  'id, tenant, filename, purpose, bytes, mime_type, created_at, expires_at, file_ttl_seconds, status, file_id, assembly';

/** A list query's values, as pageSql numbers them. */
const pageValues = (q: ListQuery): unknown[] => [
  q.tenant,
  q.now,
  q.limit,
  ...(q.purpose !== undefined ? [q.purpose] : []),
  ...(q.after ? [q.after.createdAt, q.after.id] : []),
];

/**
 * The list query, each row as `select`: keyset pagination on (created_at, id), row-value comparison,
 * so that it is an index range scan on files_by_time, or files_by_purpose_time with a purpose, in
 * either direction. Parameters: $1 tenant, $2 now, $3 limit, then purpose, then the cursor's
 * fallback created_at and id.
 */
export function pageSql(select: string, order: 'asc' | 'desc', purpose: boolean, after: boolean): string {
  const where = ['tenant = $1', '(expires_at IS NULL OR expires_at > $2)'];
  let n = 3;
  if (purpose) where.push(`purpose = $${++n}`);
  if (after) {
    const [createdAt, id] = [`$${++n}`, `$${++n}`];
    // The cursor row's own created_at when it is still there: one round trip, not a lookup first.
    const cursorAt = `coalesce((SELECT created_at FROM files WHERE id = ${id} AND tenant = $1), ${createdAt})`;
    where.push(`(created_at, id) ${order === 'asc' ? '>' : '<'} (${cursorAt}, ${id})`);
  }
  return `SELECT ${select} FROM files WHERE ${where.join(' AND ')} ORDER BY created_at ${order}, id ${order} LIMIT $3`;
}

const INTEGER_FIELDS: ReadonlySet<keyof FileRecord> = new Set(['bytes', 'createdAt', 'expiresAt']);
/**
 * Between the values of a rendered page's joined row: a control character, which uploads refuse in
 * filenames and generated ids and purposes never hold. A page where some value holds it anyway
 * (written by reindex or by hand) has a row of more pieces than fields, and is read again a value
 * per column.
 */
const SEPARATOR = '\x01';

/**
 * How this catalog renders a shape. Much of the driver's cost is per value it decodes (a page of 101
 * rows in 7 columns is 707 strings), so each row comes as one text, its values as PostgreSQL writes
 * them joined by SEPARATOR, and is split and quoted here; integers go on as PostgreSQL wrote them,
 * never parsed. That saves the gateway more CPU per page than it adds to the database's
 * (docs/decisions/0017-postgresql-pages-rendered-in-the-gateway.md).
 */
export interface RenderPlan {
  template: ShapeTemplate;
  /** Per field: an integer, sent on as written ('' is NULL), or text, quoted. */
  integer: boolean[];
  /** The shape's fields, joined: NULL (only expires_at may be) as ''. */
  joined: string;
  /** The same values one per column, for a page where some value holds SEPARATOR. */
  columns: string;
  /** Prepared statement names are per plan. */
  name: string;
}

let plans = 0;
export function renderPlan(shape: RecordShape): RenderPlan {
  const template = shapeTemplate(shape);
  const integer = template.fields.map((f) => INTEGER_FIELDS.has(f));
  const values = template.fields.map((f, i) =>
    integer[i] ? `coalesce(${FILE_COLUMNS[f]}::text, '')` : FILE_COLUMNS[f],
  );
  return {
    template,
    integer,
    joined: `concat_ws(chr(${SEPARATOR.charCodeAt(0)}), ${values.join(', ')})`,
    columns: values.join(', '),
    name: `rendered${++plans}`,
  };
}

/** One row's values, as PostgreSQL wrote them, as the template's JSON text. */
function renderValues({ template: { texts }, integer }: RenderPlan, values: readonly string[]): string {
  let json = texts[0]!;
  for (let i = 0; i < integer.length; i++)
    json += (integer[i] ? values[i] || 'null' : JSON.stringify(values[i])) + texts[i + 1]!;
  return json;
}

/** Every value as the text PostgreSQL sent: rendered pages quote or copy it, never parse it. */
const AS_SENT = { getTypeParser: () => (v: string) => v } as unknown as typeof types;

// The driver's and the network's ways of saying "the database is not there right now": refused,
// restarting (57P01 admin_shutdown, 57P02, 57P03 cannot_connect_now), connection exceptions (08xxx),
// out of connections or resources (53xxx). Anything else is a bug or bad data, and propagates.
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);
const UNREACHABLE_SQLSTATE = /^(08|53|57P0[123])/;
const UNREACHABLE_MESSAGE = /Connection terminated|timeout exceeded when trying to connect|not queryable/i;

export function isUnreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || UNREACHABLE_SQLSTATE.test(code))) return true;
  if (err instanceof AggregateError) return err.errors.some(isUnreachable);
  return UNREACHABLE_MESSAGE.test(err.message);
}

const translate = (err: unknown): never => {
  throw isUnreachable(err) ? unavailable('catalog', err) : err;
};

/** What went wrong, for an operator: a refused connection to several addresses is an AggregateError without a message. */
function reason(err: unknown): string {
  if (err instanceof AggregateError) return err.errors.map(reason).join('; ');
  if (err instanceof Error) return err.message || String((err as { code?: unknown }).code ?? err.name);
  return String(err);
}

/** The URL as it may be logged: password (in the authority or as a parameter) masked. */
export function maskUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '****';
  if (u.searchParams.has('password')) u.searchParams.set('password', '****');
  return u.toString();
}

// int8 (counts, sizes, Unix seconds) as JS numbers: every value stays far below 2^53.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export interface PostgresCatalogOptions {
  /**
   * postgres://user:password@host:5432/db. TLS comes from the URL's libpq parameters: sslmode
   * (disable, require, verify-full...), sslrootcert, sslcert and sslkey (file paths).
   */
  url: string;
  /** Most connections this process holds (the pool's bound); runExclusive takes one more while it runs. */
  poolSize: number;
}

type Tx = pg.PoolClient;

/**
 * The shared catalog for several replicas. Queries run on a bounded pool; hot ones are named
 * prepared statements (parsed once per connection). A database that is down or restarting makes
 * calls fail fast with 503 and the pool reconnects by itself when it is back.
 */
export class PostgresCatalog implements Catalog {
  readonly kind = 'postgres';
  readonly location: string;
  private readonly clientConfig: pg.ClientConfig;
  private readonly pool: pg.Pool;
  /** How each shape asked for is rendered; a shape is meant to be a constant. */
  private readonly renderPlans = new WeakMap<RecordShape, RenderPlan>();

  constructor(opts: PostgresCatalogOptions) {
    this.location = maskUrl(opts.url);
    this.clientConfig = {
      connectionString: opts.url,
      types,
      connectionTimeoutMillis: 5000,
      application_name: 'files-gateway',
    };
    this.pool = new pg.Pool({ ...this.clientConfig, max: opts.poolSize, idleTimeoutMillis: 30_000 });
    // An idle connection cut by a server restart: the pool drops it and opens a new one on demand.
    this.pool.on('error', () => undefined);
    // Prepared statements run their generic plan. By default PostgreSQL plans a statement afresh on
    // every run while that costs less than its generic plan is estimated to (with the LIMIT a
    // parameter, the generic plan's estimate is far higher), and list pages always did: planning
    // was a third of a first page's CPU on the server and half of a deep cursor's. The generic plans
    // are the same index scans (the plan test checks every list statement both ways). Queued before
    // the connection's first query. Where it fails (PostgreSQL 11 has no plan_cache_mode; a broken
    // connection fails its next query anyway), statements are planned as before.
    this.pool.on(
      'connect',
      (client) => void client.query('SET plan_cache_mode = force_generic_plan').catch(() => undefined),
    );
  }

  async init(): Promise<void> {
    // Replicas starting together: one migrates, the others wait for the lock, then find nothing to do.
    await migratePostgres((migrate) =>
      this.transaction(async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_SPACE, 'migrate']);
        return migrate(tx);
      }),
    ).catch((err: unknown) => {
      // Start-up and `check` print this: say where and why, never with the password.
      throw new Error(
        `PostgreSQL catalog at ${this.location}: ${reason(err instanceof GatewayError ? err.cause : err)}`,
        { cause: err },
      );
    });
  }

  private async query<R extends pg.QueryResultRow>(
    name: string | undefined,
    text: string,
    values: unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(name ? { name, text, values } : { text, values }).catch(translate);
  }

  private async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const tx = await this.pool.connect().catch(translate);
    try {
      await tx.query('BEGIN');
      const result = await fn(tx);
      await tx.query('COMMIT');
      tx.release();
      return result;
    } catch (err) {
      const broken = await tx.query('ROLLBACK').then(
        () => false,
        () => true,
      );
      // A connection that cannot even roll back is discarded, not handed to the next caller.
      tx.release(broken);
      return translate(err);
    }
  }

  async upsert(f: FileRecord): Promise<void> {
    await this.query(
      'upsert',
      `INSERT INTO files (${FILE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, filename = excluded.filename, purpose = excluded.purpose,
         bytes = excluded.bytes, created_at = excluded.created_at, expires_at = excluded.expires_at`,
      [f.id, f.tenant, f.filename, f.purpose, f.bytes, f.createdAt, f.expiresAt],
    );
  }

  async get(id: string): Promise<FileRecord | undefined> {
    const { rows } = await this.query<Row>('get', `SELECT ${FILE_COLS} FROM files WHERE id = $1`, [id]);
    return rows[0] && toRecord(rows[0]);
  }

  async list(q: ListQuery, shape: RecordShape): Promise<string[]> {
    let plan = this.renderPlans.get(shape);
    if (!plan) {
      plan = renderPlan(shape);
      this.renderPlans.set(shape, plan);
    }
    let rows = (await this.pageRows(`${plan.name}:${pageKey(q)}`, plan.joined, q)).map(([joined]) =>
      joined!.split(SEPARATOR),
    );
    // Some value held the separator (more pieces than fields): this page again, a value per column.
    if (rows.some((values) => values.length !== plan.integer.length))
      rows = await this.pageRows(undefined, plan.columns, q);
    return rows.map((values) => renderValues(plan, values));
  }

  /** A list page's rows, each as its values' text as PostgreSQL sent it; `name` prepares the statement. */
  private async pageRows(name: string | undefined, select: string, q: ListQuery): Promise<string[][]> {
    const text = pageSql(select, q.order, q.purpose !== undefined, q.after !== undefined);
    const { rows } = await this.pool
      .query<string[]>({ name, text, values: pageValues(q), rowMode: 'array', types: AS_SENT })
      .catch(translate);
    return rows;
  }

  /**
   * One UPDATE decides: a second claimant blocks on the first one's row lock, then re-checks the
   * condition against the row as the first left it (READ COMMITTED), finds it claimed and changes nothing.
   */
  async claimRemoval(id: string): Promise<boolean> {
    const res = await this.query(
      'claimRemoval',
      `UPDATE files SET expires_at = ${REMOVAL_CLAIMED} WHERE id = $1 AND (expires_at IS NULL OR expires_at <> ${REMOVAL_CLAIMED})`,
      [id],
    );
    return (res.rowCount ?? 0) > 0;
  }

  async delete(id: string): Promise<boolean> {
    return ((await this.query('delete', 'DELETE FROM files WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async expired(now: number, limit: number): Promise<FileRecord[]> {
    const { rows } = await this.query<Row>(
      'expired',
      `SELECT ${FILE_COLS} FROM files WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2`,
      [now, limit],
    );
    return rows.map(toRecord);
  }

  async stats(): Promise<{ files: number; bytes: number }> {
    return (await this.query<{ files: number; bytes: number }>('stats', 'SELECT files, bytes FROM file_totals'))
      .rows[0]!;
  }

  async ping(): Promise<void> {
    await this.query(undefined, 'SELECT 1');
  }

  /**
   * Holds a session-level advisory lock on a connection of its own, outside the pool (fn queries
   * through the pool, which may be one connection). Ending that session releases the lock, so a
   * holder that crashes or loses the database frees it for the next replica.
   */
  async runExclusive<T>(name: string, fn: () => Promise<T>): Promise<T | undefined> {
    const session = new pg.Client(this.clientConfig);
    // A cut session has already freed the lock; fn's own queries report the outage.
    session.on('error', () => undefined);
    try {
      await session.connect().catch(translate);
      const { rows } = await session
        .query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked', [LOCK_SPACE, name])
        .catch(translate);
      return rows[0]!.locked ? await fn() : undefined;
    } finally {
      await session.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }

  async insertUpload(u: UploadRecord): Promise<void> {
    await this.query(
      'insertUpload',
      `INSERT INTO uploads (${UPLOAD_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [
        u.id,
        u.tenant,
        u.filename,
        u.purpose,
        u.bytes,
        u.mimeType,
        u.createdAt,
        u.expiresAt,
        u.fileTtlSeconds,
        u.status,
        u.fileId,
        u.assembly ?? null,
      ],
    );
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const { rows } = await this.query<UploadRow>('getUpload', `SELECT ${UPLOAD_COLS} FROM uploads WHERE id = $1`, [id]);
    return rows[0] && toUpload(rows[0]);
  }

  async addUploadPart(part: UploadPartRecord, now: number, maxParts: number): Promise<AddPartOutcome> {
    return this.transaction(async (tx) => {
      // The row lock serialises parts of one upload across replicas: the totals below cannot change
      // until this transaction ends, and complete or cancel wait for it too.
      const upload = (
        await tx.query<{ bytes: number; status: UploadStatus; expires_at: number }>(
          'SELECT bytes, status, expires_at FROM uploads WHERE id = $1 FOR UPDATE',
          [part.uploadId],
        )
      ).rows[0];
      if (upload?.status !== 'pending' || upload.expires_at <= now) return 'not_pending';
      const totals = (
        await tx.query<{ count: number; bytes: number }>(
          'SELECT count(*) AS count, coalesce(sum(bytes), 0)::bigint AS bytes FROM upload_parts WHERE upload_id = $1',
          [part.uploadId],
        )
      ).rows[0]!;
      if (totals.bytes + part.bytes > upload.bytes) return 'over_bytes';
      if (totals.count >= maxParts) return 'too_many_parts';
      await tx.query('INSERT INTO upload_parts (id, upload_id, bytes, created_at, slot) VALUES ($1, $2, $3, $4, $5)', [
        part.id,
        part.uploadId,
        part.bytes,
        part.createdAt,
        part.slot ?? null,
      ]);
      return 'added';
    });
  }

  async uploadParts(uploadId: string): Promise<UploadPartRecord[]> {
    const { rows } = await this.query<PartRow>(
      'uploadParts',
      'SELECT id, upload_id, bytes, created_at, slot FROM upload_parts WHERE upload_id = $1 ORDER BY created_at, id',
      [uploadId],
    );
    return rows.map(toPart);
  }

  async reservePartSlot(uploadId: string): Promise<number> {
    const { rows } = await this.query<{ slot: number }>(
      'reservePartSlot',
      'UPDATE uploads SET part_slots = part_slots + 1 WHERE id = $1 RETURNING part_slots - 1 AS slot',
      [uploadId],
    );
    if (!rows[0]) throw new Error(`no upload ${uploadId} to reserve a part slot in`);
    return rows[0].slot;
  }

  async cancelUpload(id: string): Promise<boolean> {
    const res = await this.query(
      'cancelUpload',
      "UPDATE uploads SET status = 'cancelled' WHERE id = $1 AND status = 'pending'",
      [id],
    );
    return (res.rowCount ?? 0) > 0;
  }

  async completeUpload(id: string, f: FileRecord): Promise<boolean> {
    // One statement is one transaction: the file row exists exactly when the upload turned completed.
    const res = await this.query(
      'completeUpload',
      `WITH done AS (UPDATE uploads SET status = 'completed', file_id = $2 WHERE id = $1 AND status = 'pending' RETURNING 1)
       INSERT INTO files (${FILE_COLS}) SELECT $2, $3, $4, $5, $6, $7, $8 FROM done`,
      [id, f.id, f.tenant, f.filename, f.purpose, f.bytes, f.createdAt, f.expiresAt],
    );
    return (res.rowCount ?? 0) > 0;
  }

  async uploadsToRelease(now: number, limit: number): Promise<UploadRecord[]> {
    const { rows } = await this.query<UploadRow>(
      'uploadsToRelease',
      `SELECT ${UPLOAD_COLS} FROM uploads WHERE NOT released AND (status <> 'pending' OR expires_at <= $1) ORDER BY expires_at LIMIT $2`,
      [now, limit],
    );
    return rows.map(toUpload);
  }

  async markUploadReleased(id: string): Promise<void> {
    await this.query(
      'markUploadReleased',
      `WITH parts AS (DELETE FROM upload_parts WHERE upload_id = $1)
       UPDATE uploads SET released = true, status = CASE WHEN status = 'pending' THEN 'expired' ELSE status END WHERE id = $1`,
      [id],
    );
  }

  async forgetUploads(before: number): Promise<number> {
    return (
      (await this.query('forgetUploads', 'DELETE FROM uploads WHERE released AND expires_at <= $1', [before]))
        .rowCount ?? 0
    );
  }
}
