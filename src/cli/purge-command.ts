/**
 * `outbox-relay purge --tenant T [--before TIME] --yes`: discards a tenant's
 * pending (held) events, e.g. when the tenant is over its usage limit anyway.
 * Deleted events are gone for good, so it refuses to run without --yes, and
 * refuses a --before that names no real instant rather than guess one.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import { purgeTenant } from '../outbox/operator-queries.js';
import { UsageError } from './args.js';
import { withMigratedOutbox } from './migrated-outbox.js';
import { printable } from './terminal-text.js';

/** Options of the purge. */
export interface PurgeOptions {
  tenant: string | undefined;
  before: string | undefined;
  yes: boolean;
}

/**
 * A date (midnight UTC) or a date and time with an explicit zone (Z or
 * ±hh:mm), so it never means local time by accident.
 */
const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2})))?$/;

const FORMS =
  'an ISO 8601 date (2026-11-21, midnight UTC) or a time with a zone (2026-11-21T08:00:00Z, 2026-11-21T09:00+01:00)';

/** Why the fields of a matched --before name no real instant, or undefined if they do. */
function impossibleField(fields: readonly (string | undefined)[]): string | undefined {
  const [year, month, day, hour, minute, second, zoneHours, zoneMinutes] = fields.map(Number);
  if (!(month !== undefined && month >= 1 && month <= 12)) return 'months go from 01 to 12';
  const days = new Date(Date.UTC(year ?? 0, month, 0)).getUTCDate();
  if (!(day !== undefined && day >= 1 && day <= days))
    return `${fields[0]}-${fields[1]} has ${days} days`;
  if ((hour ?? 0) > 23) return 'hours go from 00 to 23';
  if ((minute ?? 0) > 59 || (zoneMinutes ?? 0) > 59) return 'minutes go from 00 to 59';
  if ((second ?? 0) > 59) return 'seconds go from 00 to 59';
  if ((zoneHours ?? 0) > 23) return 'zone offsets go from -23:59 to +23:59';
  return undefined;
}

/**
 * Parses --before. JavaScript's Date rolls impossible fields over
 * (2026-02-30 becomes March 2, T24:00 the next day): on a destructive command
 * that would delete more than asked, so every field is range-checked first.
 */
export function parseBefore(raw: string): Date {
  const match = ISO_TIME.exec(raw);
  if (!match) throw new UsageError(`--before expects ${FORMS}, got '${raw}'`);
  // Absent time and zone fields are zero.
  const impossible = impossibleField(match.slice(1).map((field) => field ?? '0'));
  const parsed = new Date(raw);
  if (impossible || Number.isNaN(parsed.getTime())) {
    throw new UsageError(
      `--before '${raw}' is not a real date and time (${impossible ?? 'out of range'})`,
    );
  }
  return parsed;
}

/** Validates the options, deletes, prints how many; returns the exit code. */
export async function purgeCommand(
  config: Config,
  options: PurgeOptions,
  logger: Logger,
): Promise<number> {
  const tenant = options.tenant;
  if (!tenant || tenant.trim() === '') throw new UsageError('purge needs --tenant <tenant id>');
  const before = options.before === undefined ? new Date() : parseBefore(options.before);
  if (!options.yes) {
    throw new UsageError(
      `purge deletes tenant ${tenant}'s pending events for good; add --yes to confirm`,
    );
  }
  return withMigratedOutbox(config, 'purge', logger, async (store) => {
    const deleted = await purgeTenant(store, tenant, before);
    logger.info('purged pending events', { tenant, before: before.toISOString(), deleted });
    process.stdout.write(
      `purged ${deleted} pending events of tenant ${printable(tenant)} created before ${before.toISOString()}\n`,
    );
    return 0;
  });
}
