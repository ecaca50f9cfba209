/**
 * `outbox-relay claim --explain`: prints one claim as a psql script (the
 * claim's SQL files with `\set` values, under `explain (analyze, buffers)`,
 * rolled back), so an operator can see its plan on the real database. The
 * tenants are the ones a claim would lock now, or those given with --tenant.
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import { claimExplainScript, previewClaimTenants } from '../outbox/claim-explain.js';
import { defaultClaimParams } from '../outbox/claim-sql.js';
import { isUuid } from '../outbox/text-rules.js';
import { UsageError } from './args.js';
import { withMigratedOutbox } from './migrated-outbox.js';

/** Options of `claim`. */
export interface ClaimCommandOptions {
  explain: boolean;
  /** Explain the generic plan of the relay's named statements. */
  generic: boolean;
  /** The claim's tenants; none: the ones a claim would lock now. */
  tenants: readonly string[];
  /** The relay id to claim as (default: a new one). */
  relayId: string | undefined;
}

/** Prints the script; returns the exit code. */
export async function claimCommand(
  config: Config,
  options: ClaimCommandOptions,
  logger: Logger,
): Promise<number> {
  if (!options.explain) {
    throw new UsageError('claim prints a claim for EXPLAIN and needs --explain');
  }
  const relayId = options.relayId ?? randomUUID();
  if (!isUuid(relayId)) throw new UsageError(`--relay-id expects a UUID, got '${relayId}'`);
  if (options.tenants.some((tenant) => tenant === '')) {
    throw new UsageError('--tenant expects a tenant id, got an empty one');
  }
  // A relay's claim with this configuration; no relay's liveness lock is held here.
  const params = defaultClaimParams(relayId, {
    maxTenants: config.tenantsPerClaim,
    batchSize: config.batchSize,
    leaseMs: config.leaseMs,
    requireLiveness: false,
  });
  const locked = await withMigratedOutbox(config, 'claim', logger, (store) =>
    options.tenants.length > 0
      ? Promise.resolve({ tenants: [...options.tenants], walked_limit: false })
      : previewClaimTenants(store, params),
  );
  if (locked.tenants.length === 0) {
    logger.warn('no tenant has claimable rows now; the claim in the script serves none');
  }
  process.stdout.write(
    claimExplainScript(config.schema, params, locked, { generic: options.generic }),
  );
  return 0;
}
