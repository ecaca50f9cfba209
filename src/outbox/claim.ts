/**
 * Claiming a batch: one short transaction that opens (`begin`), locks its
 * tenants (sql/claim-tenants.sql), leases rows of those tenants and returns
 * them with their payloads (sql/claim.sql), and commits. The algorithm and its invariants are
 * described once, in docs/architecture.md, "Claiming", and beside the SQL.
 */
import type pg from 'pg';
import {
  type ClaimParams,
  type ClaimStatements,
  type ClaimTenants,
  claimStatements,
  claimTenantsVariables,
  claimVariables,
} from './claim-sql.js';
import type { OutboxStore } from './outbox-store.js';
import { perSchema, quoteLiteral } from './outbox-tables.js';
import { compareIds } from './row-id.js';
import { type CommitUnderWay, inTransactionCommitUnderWay } from './transaction.js';

/** A row as the claim returns it. */
export interface ClaimedRow {
  id: string;
  message_id: string;
  tenant_id: string;
  ordering_key: string | null;
  exchange: string;
  routing_key: string;
  message_type: string | null;
  content_type: string;
  headers: Record<string, unknown>;
  /** Creation time, epoch milliseconds: a number parses far cheaper than a timestamp. */
  created_ms: number;
  attempts: number;
  /** The message body (plain bytea: hex text on the wire, cheaper than base64 both ends, measured). */
  payload: Buffer;
  /** The same on every row: the last tenant this claim served, where the next one starts. */
  next_cursor: string;
  /** The same on every row: whether more rows are probably claimable right away. */
  more: boolean;
}

/** A claim's statements: its transaction's opening and its two SQL files. */
export interface ClaimTransaction extends ClaimStatements {
  readonly begin: string;
}

/** The claim's statements for `schema`, built (and the SQL files read) once. */
export const claimTransaction = perSchema(
  (tables): ClaimTransaction => ({
    // Read committed, whatever the database default: the claim statement must
    // take its snapshot after the tenant locks, which only this isolation level does.
    // JIT off for the transaction: at a few million pending rows the claim's
    // estimated cost crosses jit_above_cost, and compiling its plan took ~0.5 s
    // per claim against ~6 ms to run it (measured at 1M rows).
    // idle_in_transaction_session_timeout: a relay frozen (SIGSTOP, a VM
    // pause) between the claim's statements would hold its tenants' claim
    // locks, and every other relay would skip those tenants; after 5 s
    // PostgreSQL ends that session, and the locks with it.
    // The schema's claim lock, shared: relays of this version never wait for
    // each other on it, but a relay of an earlier version (which took it
    // exclusively and no tenant locks) and these exclude each other, so a
    // rolling upgrade keeps one holder per tenant.
    begin: `begin isolation level read committed;
      select set_config('idle_in_transaction_session_timeout', '5000', true),
        pg_advisory_xact_lock_shared(hashtextextended(${quoteLiteral(`outbox-relay:claim:${tables.schema}`)}, 0)), set_config('jit', 'off', true)`,
    ...claimStatements(tables.schema),
  }),
);

/**
 * Picks the tenants of a claim and takes their claim locks, on `client`, in
 * the claim's transaction (a statement of its own: the claim's snapshot must
 * come after the locks). Tenants another claim holds right now are left out.
 */
export async function lockClaimTenants(
  store: OutboxStore,
  client: pg.ClientBase,
  params: ClaimParams,
): Promise<ClaimTenants> {
  const { claimTenants } = claimTransaction(store.schema);
  const result = await client.query<ClaimTenants>({
    name: `outbox_claim_tenants_${store.schema}`,
    text: claimTenants.text,
    values: claimTenants.values(claimTenantsVariables(params)),
  });
  return result.rows[0] ?? { tenants: [], walked_limit: false };
}

/**
 * A claim whose rows are back and whose transaction is committing; a failed
 * commit may not have written its leases.
 */
export interface ClaimInProgress extends Omit<CommitUnderWay<ClaimedRow[]>, 'result'> {
  rows: ClaimedRow[];
}

/**
 * Leases up to `batchSize` rows, interleaving tenants round-robin. Runs in a
 * short transaction of its own that holds a claim lock for each tenant it
 * serves (claims of other tenants run alongside); no lock or transaction
 * outlives the commit. Rows come back in id order.
 */
export async function claimBatch(store: OutboxStore, params: ClaimParams): Promise<ClaimedRow[]> {
  const { rows, committed } = await claimBatchCommitting(store, params);
  await committed;
  return rows;
}

/**
 * {@link claimBatch}, returning the rows as soon as the claim statement has,
 * with its commit under way: the relay publishes them meanwhile (the tenants'
 * claim locks stay held until the commit, so no other claim takes them), and
 * claims again only once `committed` settled (docs/architecture.md, step 10).
 */
export async function claimBatchCommitting(
  store: OutboxStore,
  params: ClaimParams,
): Promise<ClaimInProgress> {
  const { begin, claim } = claimTransaction(store.schema);
  // One round trip (simple protocol, no parameters: the schema is a validated
  // identifier) to begin and turn JIT off; one to lock the tenants; one to claim.
  const { result, committed, commitFailed } = await inTransactionCommitUnderWay(
    store.pool,
    begin,
    async (client) => {
      const locked = await lockClaimTenants(store, client, params);
      if (locked.tenants.length === 0) return [];
      const claimed = await client.query<ClaimedRow>({
        name: `outbox_claim_${store.schema}`,
        text: claim.text,
        values: claim.values(claimVariables(params, locked)),
      });
      return claimed.rows.sort((a, b) => compareIds(a.id, b.id));
    },
  );
  return { rows: result, committed, commitFailed };
}
