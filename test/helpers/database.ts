/**
 * A schema of its own for each test file, migrated through the real migrator.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { migrateUp } from '../../src/migrator/migrator.js';
import { holdLiveness as takeLivenessLock } from '../../src/outbox/leases.js';
import { createOutboxStore, type OutboxStore } from '../../src/outbox/outbox-store.js';
import { dead, pending } from '../../src/outbox/row-state.js';

/** A migrated outbox schema and a pool on it. */
export interface TestDatabase {
  url: string;
  schema: string;
  pool: pg.Pool;
  /** The outbox store on `pool`. */
  store: OutboxStore;
  /** Rows of the outbox table by state, and live tenant leases. */
  counts(): Promise<{ pending: number; leased: number; published: number; dead: number }>;
  drop(): Promise<void>;
}

/** A unique lower-case name for this test file's objects. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** Creates and migrates a fresh schema named after `prefix`. */
export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const url = inject('databaseUrl');
  const schema = uniqueName(`t_${prefix}`);
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => undefined);
  await migrateUp(pool, schema);
  const store = createOutboxStore(pool, schema);
  return {
    url,
    schema,
    pool,
    store,
    async counts() {
      const { rows } = await pool.query<{
        pending: number;
        leased: number;
        published: number;
        dead: number;
      }>(
        `select
           count(*) filter (where ${pending()})::int as pending,
           (select count(*) from "${schema}".tenant_leases where leased_until > now())::int as leased,
           count(*) filter (where published_at is not null)::int as published,
           count(*) filter (where ${dead()})::int as dead
         from "${schema}".messages`,
      );
      return rows[0] as { pending: number; leased: number; published: number; dead: number };
    },
    async drop() {
      await pool.query(`drop schema if exists "${schema}" cascade`);
      await pool.end();
    },
  };
}

/**
 * Holds relay `relayId`'s liveness lock on a connection of its own, as a
 * live relay does; `release()` ends that session (the relay "dies").
 */
export async function holdLiveness(
  db: TestDatabase,
  relayId: string,
): Promise<{ release(): Promise<void> }> {
  const client = new pg.Client({ connectionString: db.url });
  client.on('error', () => undefined);
  await client.connect();
  if (!(await takeLivenessLock(db.store, client, relayId)))
    throw new Error(`liveness lock of ${relayId} already held`);
  return { release: () => client.end() };
}
