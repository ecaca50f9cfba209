/**
 * `outbox-relay migrate up|down|status`: the only way the schema changes.
 */
import type { Config } from '../config.js';
import { withCommandPool } from '../db/pool.js';
import type { Logger } from '../log/logger.js';
import { migrateDown, migrateUp, migrationStatus } from '../migrator/migrator.js';
import { UsageError } from './args.js';

/** Runs one migrate action; prints results on stdout. Returns the exit code. */
export async function migrateCommand(
  action: string | undefined,
  config: Config,
  logger: Logger,
): Promise<number> {
  if (action !== 'up' && action !== 'down' && action !== 'status') {
    throw new UsageError(
      `migrate needs an action: up, down or status${action ? ` (got '${action}')` : ''}`,
    );
  }
  return withCommandPool(config, 'migrate', logger, async (pool) => {
    if (action === 'status') {
      const states = await migrationStatus(pool, config.schema);
      for (const state of states) {
        const applied = state.executedAt ? `applied ${state.executedAt.toISOString()}` : 'pending';
        process.stdout.write(`${state.name}  ${applied}\n`);
      }
      return 0;
    }
    if (action === 'up') {
      const { applied } = await migrateUp(pool, config.schema);
      process.stdout.write(
        applied.length === 0
          ? `schema ${config.schema} is up to date\n`
          : applied.map((name) => `applied ${name}\n`).join(''),
      );
      return 0;
    }
    const { reverted } = await migrateDown(pool, config.schema);
    process.stdout.write(
      reverted.length === 0
        ? 'nothing to revert\n'
        : reverted.map((name) => `reverted ${name}\n`).join(''),
    );
    return 0;
  });
}
