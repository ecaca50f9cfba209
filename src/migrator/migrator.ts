/**
 * Applies, reverts and lists the outbox schema's migrations through Kysely's
 * Migrator, which brings the lock (one migrator at a time) and the bookkeeping
 * table (`<schema>.kysely_migration`). Only the CLI applies and reverts:
 * nothing changes the schema at run time; the relay reads the status at
 * start-up ({@link pendingMigrations}).
 */
import { Kysely, Migrator } from 'kysely';
import type pg from 'pg';
import { describeError, OutboxError } from '../errors.js';
import { SchemaScopedPostgresDialect } from './schema-introspector.js';
import { MIGRATIONS_DIR, SqlMigrationProvider } from './sql-migration-provider.js';

/** One migration and whether it has been applied. */
export interface MigrationState {
  name: string;
  executedAt: Date | undefined;
}

/** What a migrate up or down did. */
export interface MigrationOutcome {
  applied: string[];
  reverted: string[];
}

function createMigrator(
  pool: pg.Pool,
  schema: string,
  dir: string,
): { db: Kysely<unknown>; migrator: Migrator } {
  // The pool belongs to the caller; Kysely must not end it on destroy.
  const db = new Kysely<unknown>({
    dialect: new SchemaScopedPostgresDialect(
      { pool: { connect: () => pool.connect(), end: async () => undefined } },
      schema,
    ),
  });
  const migrator = new Migrator({
    db,
    provider: new SqlMigrationProvider(schema, dir),
    migrationTableSchema: schema,
  });
  return { db, migrator };
}

async function run(
  pool: pg.Pool,
  schema: string,
  dir: string,
  direction: 'up' | 'down',
): Promise<MigrationOutcome> {
  const { db, migrator } = createMigrator(pool, schema, dir);
  try {
    const { error, results } =
      direction === 'up' ? await migrator.migrateToLatest() : await migrator.migrateDown();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName;
      const what = failed ? `migration ${failed} failed` : `migrate ${direction} failed`;
      throw new OutboxError('MIGRATION_FAILED', `${what}: ${describeError(error)}`, {
        cause: error,
      });
    }
    const done = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    return direction === 'up' ? { applied: done, reverted: [] } : { applied: [], reverted: done };
  } finally {
    await db.destroy();
  }
}

/** Applies every pending migration to `schema` (created if missing). */
export function migrateUp(
  pool: pg.Pool,
  schema: string,
  dir: string = MIGRATIONS_DIR,
): Promise<MigrationOutcome> {
  return run(pool, schema, dir, 'up');
}

/** Reverts the most recently applied migration of `schema`. */
export function migrateDown(
  pool: pg.Pool,
  schema: string,
  dir: string = MIGRATIONS_DIR,
): Promise<MigrationOutcome> {
  return run(pool, schema, dir, 'down');
}

/** Lists every known migration with the time it was applied, if it was. */
export async function migrationStatus(
  pool: pg.Pool,
  schema: string,
  dir: string = MIGRATIONS_DIR,
): Promise<MigrationState[]> {
  const { db, migrator } = createMigrator(pool, schema, dir);
  try {
    const migrations = await migrator.getMigrations();
    return migrations.map((m) => ({ name: m.name, executedAt: m.executedAt }));
  } finally {
    await db.destroy();
  }
}

/**
 * The migrations of this version not applied to `schema`, in order; none if
 * the bookkeeping records none (the schema was set up without `migrate up`,
 * so nothing can be told). The relay refuses to start on a schema older than
 * its code: claims would fail on every try (a missing column or table).
 */
export async function pendingMigrations(
  pool: pg.Pool,
  schema: string,
  dir: string = MIGRATIONS_DIR,
): Promise<string[]> {
  // Kysely reads the bookkeeping table only if it exists; with none, every
  // migration comes back unapplied.
  const states = await migrationStatus(pool, schema, dir);
  if (states.every((m) => m.executedAt === undefined)) return [];
  return states.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
