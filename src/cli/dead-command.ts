/**
 * `outbox-relay dead list|retry|discard`: manage rows that went dead after
 * OUTBOX_MAX_ATTEMPTS failed publishes (unroutable, nacked, invalid content).
 * retry puts them back to pending with attempts from zero; discard deletes
 * them for good and, like retry on everything, asks for --yes.
 */
import type { Config } from '../config.js';
import { withCommandPool } from '../db/pool.js';
import type { Logger } from '../log/logger.js';
import { changeDead, type DeadSelection, listDead, outboxStatements } from '../outbox/queries.js';
import { toSqlExecutor } from '../outbox/sql-executor.js';
import { UsageError } from './args.js';

/** Options of the dead command. */
export interface DeadOptions {
  ids: string[];
  tenant: string | undefined;
  all: boolean;
  yes: boolean;
  json: boolean;
  limit: string | undefined;
}

function selection(action: string, options: DeadOptions): DeadSelection {
  for (const id of options.ids) {
    if (!/^\d{1,19}$/.test(id))
      throw new UsageError(`--id expects a row id (a number), got '${id}'`);
  }
  const chosen = [options.ids.length > 0, options.tenant !== undefined, options.all].filter(
    Boolean,
  ).length;
  if (action !== 'list' && chosen !== 1) {
    throw new UsageError(
      `dead ${action} needs exactly one of --id <id> (repeatable), --tenant <tenant> or --all`,
    );
  }
  if (action === 'list' && options.all)
    throw new UsageError('dead list takes --id or --tenant, not --all');
  return { ids: options.ids.length > 0 ? options.ids : null, tenantId: options.tenant ?? null };
}

/** Runs one dead-row action; returns the exit code. */
export async function deadCommand(
  action: string | undefined,
  config: Config,
  options: DeadOptions,
  logger: Logger,
): Promise<number> {
  if (action !== 'list' && action !== 'retry' && action !== 'discard') {
    throw new UsageError(
      `dead needs an action: list, retry or discard${action ? ` (got '${action}')` : ''}`,
    );
  }
  const chosen = selection(action, options);
  const limit = options.limit === undefined ? 100 : Number(options.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) {
    throw new UsageError(`--limit expects an integer from 1 to 100000, got '${options.limit}'`);
  }
  if ((action === 'discard' || (action === 'retry' && options.all)) && !options.yes) {
    throw new UsageError(
      `dead ${action} ${action === 'discard' ? 'deletes dead events for good' : 'retries every dead event'}; add --yes to confirm`,
    );
  }
  const statements = outboxStatements(config.schema);
  return withCommandPool(config, `dead ${action}`, logger, async (pool) => {
    if (action === 'list') {
      const rows = await listDead(toSqlExecutor(pool), statements, chosen, limit);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else if (rows.length === 0) {
        process.stdout.write('no dead events\n');
      } else {
        for (const row of rows) {
          process.stdout.write(
            `${row.id}  ${row.tenant_id}  ${row.exchange || '(default)'} ${row.routing_key}  attempts ${row.attempts}  dead ${row.dead_at.toISOString()}\n    ${row.last_error ?? ''}\n`,
          );
        }
      }
      return 0;
    }
    const count = await changeDead(pool, statements, action, chosen);
    logger.info(`dead events ${action === 'retry' ? 'retried' : 'discarded'}`, { count });
    process.stdout.write(`${action === 'retry' ? 'retried' : 'discarded'} ${count} dead events\n`);
    return 0;
  });
}
