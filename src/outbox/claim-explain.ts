/**
 * One claim as a psql script, for EXPLAIN: the claim's two SQL files with
 * their variables set by `\set` lines to the values a relay would send, in a
 * transaction that is rolled back (the claim writes leases). What
 * `outbox-relay claim --explain` prints; docs/operations.md shows its use.
 */
import { claimTransaction, lockClaimTenants } from './claim.js';
import {
  type ClaimParams,
  type ClaimTenants,
  claimTenantsVariables,
  claimVariables,
} from './claim-sql.js';
import type { OutboxStore } from './outbox-store.js';
import { psqlSetLines, SCHEMA_VARIABLE, sqlSource } from './sql-file.js';
import { inTransaction } from './transaction.js';

/**
 * The tenants a claim with `params` would lock now, read in a claim
 * transaction that is rolled back (so no lock or lease stays).
 */
export async function previewClaimTenants(
  store: OutboxStore,
  params: ClaimParams,
): Promise<ClaimTenants> {
  const rollback = new Error('preview only');
  let locked: ClaimTenants = { tenants: [], walked_limit: false };
  try {
    await inTransaction(store.pool, claimTransaction(store.schema).begin, async (client) => {
      locked = await lockClaimTenants(store, client, params);
      throw rollback;
    });
  } catch (error) {
    if (error !== rollback) throw error;
  }
  return locked;
}

/** The statements of a script: the SQL files, or (generic) the texts a relay prepares. */
function explained(schema: string, generic: boolean): string[] {
  if (!generic) {
    return [
      'explain (analyze, buffers)',
      sqlSource('claim-tenants.sql').trim(),
      '',
      'explain (analyze, buffers)',
      sqlSource('claim.sql').trim(),
    ];
  }
  // The relay's named statements, as PostgreSQL gets them ($n parameters),
  // planned generically as after their fifth run; executed with the variables.
  const { claimTenants, claim } = claimTransaction(schema);
  const execute = (name: string, variables: readonly string[]) =>
    `explain (analyze, buffers) execute ${name}(${variables.map((v) => `:'${v}'`).join(', ')});`;
  return [
    '-- The generic plan a relay gets after five runs of its named statements.',
    'set local plan_cache_mode = force_generic_plan;',
    '',
    `prepare claim_tenants as\n${claimTenants.text};`,
    execute('claim_tenants', claimTenants.variables),
    '',
    `prepare claim as\n${claim.text};`,
    execute('claim', claim.variables),
  ];
}

/**
 * A psql script that sets the variables of `params` and `locked` and runs
 * `explain (analyze, buffers)` of sql/claim-tenants.sql and sql/claim.sql in
 * a transaction it rolls back; `generic`: of the statements a relay prepares,
 * under their generic plan.
 */
export function claimExplainScript(
  schema: string,
  params: ClaimParams,
  locked: ClaimTenants,
  options: { generic?: boolean } = {},
): string {
  const variables = {
    [SCHEMA_VARIABLE]: schema,
    ...claimTenantsVariables(params),
    ...claimVariables(params, locked),
  };
  return [
    '-- One claim of outbox-relay, with the values a relay would send now.',
    '-- Run: psql "$DATABASE_URL" -f <this file>. It takes no lock and leaves no',
    '-- lease behind: everything runs in a transaction that is rolled back.',
    "-- require_liveness is off: no relay's liveness lock is held here (see sql/claim.sql).",
    options.generic
      ? '-- The plans are generic: what a relay runs after five claims (named statements).'
      : '-- Planned with these values (a custom plan); --generic prints the generic plan a relay uses.',
    '\\set ON_ERROR_STOP on',
    psqlSetLines(variables).trimEnd(),
    '',
    '-- As a claim opens its transaction: read committed, JIT off.',
    'begin isolation level read committed;',
    'set local jit = off;',
    '',
    ...explained(schema, options.generic === true),
    '',
    'rollback;',
    '',
  ].join('\n');
}
