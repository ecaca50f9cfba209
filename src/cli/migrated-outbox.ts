/**
 * The database side of every command that reads or changes the outbox
 * (tenants, dead, purge): a command pool on a schema that has been migrated.
 * An unmigrated or half-migrated schema is one clear line telling the
 * operator to run `outbox-relay migrate up`, never a raw
 * "relation … does not exist".
 */
import type { Config } from '../config.js';
import { isUndefinedTable, withCommandPool } from '../db/pool.js';
import { describeError, OutboxError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { createOutboxStore, type OutboxStore, outboxTableExists } from '../outbox/outbox-store.js';

function notMigrated(schema: string, error?: unknown): OutboxError {
  const what = error
    ? `the outbox schema ${schema} is not fully migrated (${describeError(error)})`
    : `the outbox table ${schema}.messages does not exist`;
  return new OutboxError(
    'DATABASE_UNAVAILABLE',
    `${what}: run \`outbox-relay migrate up\` first`,
    error ? { cause: error } : undefined,
  );
}

/**
 * Opens a command pool (one clear error if PostgreSQL is unreachable),
 * checks that the outbox table exists, runs `work`, always closes.
 */
export async function withMigratedOutbox<T>(
  config: Config,
  command: string,
  logger: Logger,
  work: (store: OutboxStore) => Promise<T>,
): Promise<T> {
  return withCommandPool(config, command, logger, async (pool) => {
    const store = createOutboxStore(pool, config.schema);
    if (!(await outboxTableExists(store))) {
      throw notMigrated(config.schema);
    }
    try {
      return await work(store);
    } catch (error) {
      // A table of a later migration (tenant_leases) may be missing too.
      if (isUndefinedTable(error)) {
        throw notMigrated(config.schema, error);
      }
      throw error;
    }
  });
}
