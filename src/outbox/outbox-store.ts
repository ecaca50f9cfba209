/**
 * The outbox store: one pool and one schema, bound once. Every statement that
 * touches the outbox is a function of a store, in a file named for its job:
 *
 * | file                   | job                                                    |
 * | ---------------------- | ------------------------------------------------------ |
 * | insert-statements.ts   | insert rows (`enqueue`, on the caller's transaction)   |
 * | claim.ts               | claim a batch (sql/claim-tenants.sql, sql/claim.sql)   |
 * | settle.ts              | delete or mark published rows, record failures         |
 * | leases.ts              | release and sweep tenant leases, the liveness lock     |
 * | operator-queries.ts    | dead rows, purge, per-tenant backlog, retention delete |
 * | backlog-stats.ts       | the backlog metrics and the id sequence                |
 *
 * Callers make a store once (`createOutboxStore(pool, schema)`) and pass it;
 * statement texts are built once per schema (the row's states: row-state.ts).
 */
import type pg from 'pg';
import { type OutboxTables, outboxTables, quoteIdent, quoteLiteral } from './outbox-tables.js';
import { type SqlExecutor, toSqlExecutor } from './sql-executor.js';

/** One outbox schema on one pool: what every statement of the outbox runs on. */
export interface OutboxStore {
  readonly schema: string;
  /** The schema's objects, quoted. */
  readonly tables: OutboxTables;
  /** For statements that need a connection of their own (a transaction, a session lock). */
  readonly pool: pg.Pool;
  /** The same pool as an executor, for single statements. */
  readonly db: SqlExecutor;
}

/** Binds the outbox in `schema` (a validated identifier) to `pool`. */
export function createOutboxStore(pool: pg.Pool, schema: string): OutboxStore {
  return Object.freeze({ schema, tables: outboxTables(schema), pool, db: toSqlExecutor(pool) });
}

/** LISTEN on the store's notify channel (the relay's wake-ups). */
export function listenStatement(store: OutboxStore): string {
  return `listen ${quoteIdent(store.tables.notifyChannel)}`;
}

/** Whether the store's outbox table exists (the schema is migrated). */
export async function outboxTableExists(store: OutboxStore): Promise<boolean> {
  const [row] = await store.db.run<{ exists: boolean }>(
    `select to_regclass(${quoteLiteral(store.tables.messages)}) is not null as exists`,
    [],
  );
  return row?.exists === true;
}
