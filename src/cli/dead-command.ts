/**
 * `outbox-relay dead list|retry|discard`: manage rows that went dead after
 * OUTBOX_MAX_ATTEMPTS failed publishes (unroutable, nacked, invalid content).
 * retry puts them back to pending with attempts from zero; discard deletes
 * them for good and, like retry on everything, asks for --yes.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import {
  changeDead,
  type DeadRow,
  type DeadSelection,
  listDead,
} from '../outbox/operator-queries.js';
import { UsageError } from './args.js';
import { withMigratedOutbox } from './migrated-outbox.js';
import { printable } from './terminal-text.js';

/** Options of the dead command. */
export interface DeadOptions {
  ids: string[];
  tenant: string | undefined;
  all: boolean;
  yes: boolean;
  json: boolean;
  /** Most rows to list (list only; undefined when not given). */
  limit: number | undefined;
}

/** The largest row id (PostgreSQL bigint). */
const MAX_ID = 2n ** 63n - 1n;

function selection(action: string, options: DeadOptions): DeadSelection {
  for (const id of options.ids) {
    if (!/^\d{1,19}$/.test(id) || BigInt(id) > MAX_ID)
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
  // Flags of list only: retry and discard change every selected row, and
  // must not look as if they took only the first --limit of them.
  if (action !== 'list' && (options.limit !== undefined || options.json))
    throw new UsageError(`--${options.json ? 'json' : 'limit'} applies to dead list only`);
  return { ids: options.ids.length > 0 ? options.ids : null, tenantId: options.tenant ?? null };
}

/** One dead row for a person: id, tenant, destination, attempts, then its last error indented. */
function describeRow(row: DeadRow): string {
  const exchange = row.exchange === '' ? '(default)' : printable(row.exchange);
  return (
    `${row.id}  ${row.message_id}  ${printable(row.tenant_id)}  ${exchange} ${printable(row.routing_key)}  attempts ${row.attempts}  dead ${row.dead_at.toISOString()}\n` +
    `    ${printable(row.last_error ?? '')}\n`
  );
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
  if ((action === 'discard' || (action === 'retry' && options.all)) && !options.yes) {
    throw new UsageError(
      `dead ${action} ${action === 'discard' ? 'deletes dead events for good' : 'retries every dead event'}; add --yes to confirm`,
    );
  }
  return withMigratedOutbox(config, `dead ${action}`, logger, async (store) => {
    if (action === 'list') {
      const rows = await listDead(store, chosen, options.limit ?? 100);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else if (rows.length === 0) {
        process.stdout.write('no dead events\n');
      } else {
        process.stdout.write(rows.map(describeRow).join(''));
      }
      return 0;
    }
    const count = await changeDead(store, action, chosen);
    logger.info(`dead events ${action === 'retry' ? 'retried' : 'discarded'}`, { count });
    process.stdout.write(`${action === 'retry' ? 'retried' : 'discarded'} ${count} dead events\n`);
    return 0;
  });
}
