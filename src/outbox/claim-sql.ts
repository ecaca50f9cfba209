/**
 * The claim's two statements, `sql/claim-tenants.sql` and `sql/claim.sql`,
 * and their parameters: one typed object, {@link ClaimParams}, mapped to the
 * files' psql variables here and nowhere else. The relay, the tests, the
 * bench and `outbox-relay claim --explain` all go through this mapping.
 * What the statements do: the files' comments and docs/architecture.md,
 * "Claiming".
 */
import { bindSqlFile, type SqlFileStatement } from './sql-file.js';

/** Parameters of one claim. */
export interface ClaimParams {
  relayId: string;
  /** Last tenant served by the previous claim; '' starts from the first tenant. */
  cursor: string;
  maxTenants: number;
  minRowsPerTenant: number;
  batchSize: number;
  leaseMs: number;
  /** Tenants whose rows stay pending this claim: paused, or throttled with no token left. */
  skippedTenants: readonly string[];
  /** Ids this relay has claimed and not yet settled: the claim skips them. */
  inFlight: readonly string[];
  /** Claim nothing unless this relay holds its liveness lock (default true). */
  requireLiveness?: boolean;
}

/** The tenants one claim may serve: what claim-tenants.sql locked. */
export interface ClaimTenants {
  /** Locked for this claim, in visit order. */
  tenants: string[];
  /** The walk reached its tenant limit: more tenants may be waiting. */
  walked_limit: boolean;
}

/**
 * A claim's parameters for a claim made outside a relay (tests, the bench,
 * `claim --explain`): a relay's defaults (100 tenants, at least 10 rows each,
 * a 60 s lease), a batch of 500, from the first tenant, nothing paused or in
 * flight; `change` overrides any of them.
 */
export function defaultClaimParams(
  relayId: string,
  change: Partial<ClaimParams> = {},
): ClaimParams {
  return {
    relayId,
    cursor: '',
    maxTenants: 100,
    minRowsPerTenant: 10,
    batchSize: 500,
    leaseMs: 60_000,
    skippedTenants: [],
    inFlight: [],
    ...change,
  };
}

/** The variables of sql/claim-tenants.sql (besides the schema). */
export interface ClaimTenantsVariables {
  relay_id: string;
  cursor: string;
  max_tenants: number;
  skipped_tenants: readonly string[];
}

/** The variables of sql/claim.sql (besides the schema). */
export interface ClaimVariables {
  relay_id: string;
  tenants: readonly string[];
  walked_limit: boolean;
  min_rows_per_tenant: number;
  batch_size: number;
  lease_seconds: number;
  /** A bigint[] literal, `{1,2,3}`. */
  in_flight: string;
  require_liveness: boolean;
}

/** claim-tenants.sql's variables in `$n` order. */
const CLAIM_TENANTS_ORDER = ['relay_id', 'cursor', 'max_tenants', 'skipped_tenants'] as const;
/** claim.sql's variables in `$n` order. */
const CLAIM_ORDER = [
  'relay_id',
  'tenants',
  'walked_limit',
  'min_rows_per_tenant',
  'batch_size',
  'lease_seconds',
  'in_flight',
  'require_liveness',
] as const;

/** claim-tenants.sql's variables for `params`. */
export function claimTenantsVariables(params: ClaimParams): ClaimTenantsVariables {
  return {
    relay_id: params.relayId,
    cursor: params.cursor,
    max_tenants: params.maxTenants,
    skipped_tenants: params.skippedTenants,
  };
}

/** claim.sql's variables for `params` and the tenants claim-tenants.sql locked. */
export function claimVariables(params: ClaimParams, locked: ClaimTenants): ClaimVariables {
  return {
    relay_id: params.relayId,
    tenants: locked.tenants,
    walked_limit: locked.walked_limit,
    min_rows_per_tenant: params.minRowsPerTenant,
    batch_size: params.batchSize,
    lease_seconds: params.leaseMs / 1000,
    // An array literal built in one join: the ids are decimal digits, so they
    // need none of the per-element quoting pg would otherwise do (thousands
    // of ids per claim).
    in_flight: `{${params.inFlight.join(',')}}`,
    require_liveness: params.requireLiveness ?? true,
  };
}

/** The claim's statements for one schema. */
export interface ClaimStatements {
  readonly claimTenants: SqlFileStatement<ClaimTenantsVariables>;
  readonly claim: SqlFileStatement<ClaimVariables>;
}

/** Reads the claim's SQL files (once per process) and binds them to `schema`. */
export function claimStatements(schema: string): ClaimStatements {
  return {
    claimTenants: bindSqlFile<ClaimTenantsVariables>(
      'claim-tenants.sql',
      schema,
      CLAIM_TENANTS_ORDER,
    ),
    claim: bindSqlFile<ClaimVariables>('claim.sql', schema, CLAIM_ORDER),
  };
}
