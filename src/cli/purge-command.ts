/**
 * `outbox-relay purge --tenant T [--before TIME] --yes`: discards a tenant's
 * pending (held) events, e.g. when the tenant is over its usage limit anyway.
 * Deleted events are gone for good, so it refuses to run without --yes.
 */
import type { Config } from '../config.js';
import { withCommandPool } from '../db/pool.js';
import type { Logger } from '../log/logger.js';
import { outboxStatements, purgeTenant } from '../outbox/queries.js';
import { UsageError } from './args.js';

/** Options of the purge. */
export interface PurgeOptions {
  tenant: string | undefined;
  before: string | undefined;
  yes: boolean;
}

/** Validates the options, deletes, prints how many; returns the exit code. */
export async function purgeCommand(
  config: Config,
  options: PurgeOptions,
  logger: Logger,
): Promise<number> {
  const tenant = options.tenant;
  if (!tenant || tenant.trim() === '') throw new UsageError('purge needs --tenant <tenant id>');
  let before = new Date();
  if (options.before !== undefined) {
    // ISO 8601 with a date and an explicit zone (Z or ±hh:mm), so it never means local time by accident.
    const iso = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/;
    before = new Date(options.before);
    if (!iso.test(options.before) || Number.isNaN(before.getTime())) {
      throw new UsageError(
        `--before expects an ISO 8601 time with a zone, such as 2026-11-21T08:00:00Z, got '${options.before}'`,
      );
    }
  }
  if (!options.yes) {
    throw new UsageError(
      `purge deletes tenant ${options.tenant}'s pending events for good; add --yes to confirm`,
    );
  }
  return withCommandPool(config, 'purge', logger, async (pool) => {
    const deleted = await purgeTenant(pool, outboxStatements(config.schema), tenant, before);
    logger.info('purged pending events', {
      tenant: options.tenant,
      before: before.toISOString(),
      deleted,
    });
    process.stdout.write(
      `purged ${deleted} pending events of tenant ${options.tenant} created before ${before.toISOString()}\n`,
    );
    return 0;
  });
}
