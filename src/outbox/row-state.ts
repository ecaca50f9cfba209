/**
 * The outbox row's states, named once. Every statement that asks "which rows
 * are pending" (or dead) uses these; the claim's SQL files (sql/*.sql) spell
 * the same rule out, as psql needs, and point here.
 *
 * The row's life (docs/architecture.md, "A row's life", has the diagram):
 *
 *   pending ──claim──▶ in flight at one relay (its tenant is leased to that relay)
 *      ▲                 │  broker ack ──▶ published (deleted, or kept for retention)
 *      │                 │  nack/return ─▶ pending again at available_at (attempts + 1)
 *      │                 │               └▶ dead after max attempts
 *      └─ lease expiry ──┘  (the relay died) or released on shutdown
 *
 * "In flight" is not a column: the row stays pending, and only its relay
 * knows it has it. A paused tenant's rows stay pending too ("held"): the claim
 * skips the tenant in SQL. The partial indexes messages_pending_idx and
 * messages_pending_key_idx (migrations 0001, 0003) hold exactly the pending rows.
 */

/** A column of the row, qualified by `alias` when there is one. */
function column(alias: string | undefined, name: string): string {
  return alias ? `${alias}.${name}` : name;
}

/** Pending: neither published nor dead (claimable once `available_at` has come). */
export function pending(alias?: string): string {
  return `${column(alias, 'published_at')} is null and ${column(alias, 'dead_at')} is null`;
}

/** Dead: given up on (max attempts, or a permanent failure); kept until someone deletes it. */
export function dead(alias?: string): string {
  return `${column(alias, 'dead_at')} is not null`;
}
