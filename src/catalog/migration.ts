/**
 * One step of a catalog's schema. Each catalog keeps an ordered list of them (sqlite-migrations.ts,
 * postgres-migrations.ts), numbered 1, 2, 3... with no gaps, and applies those a database has not
 * had yet, in order, each in a transaction of its own with the version it brings the database to.
 *
 * Append, never edit or renumber: a deployed database may already have run them.
 */
export interface Migration {
  /** The schema version a database is at once this has run. */
  version: number;
  /** What it does, in a few words, for a reader and for the error naming a migration that failed. */
  description: string;
  /** Its statements, one SQL script. */
  sql: string;
}

/** The version a database is at once every migration of `migrations` has run. */
export const latestVersion = (migrations: readonly Migration[]): number => migrations.at(-1)?.version ?? 0;
