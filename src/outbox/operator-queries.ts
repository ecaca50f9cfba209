/**
 * The statements of the operator commands (`tenants`, `dead`, `purge`) and of
 * the retention cleaner: reading backlogs, retrying or discarding dead rows,
 * and deleting rows in small batches.
 */
import { pendingPerTenant } from './backlog-stats.js';
import type { OutboxStore } from './outbox-store.js';
import { perSchema } from './outbox-tables.js';
import { dead, pending } from './row-state.js';

// Ops on dead rows: $1 ids (or null), $2 tenant (or null), $3 limit where there is one.
const DEAD_SELECTION = `${dead()} and ($1::bigint[] is null or id = any ($1)) and ($2::text is null or tenant_id = $2)`;

const statements = perSchema((tables) => ({
  // Pending rows per tenant with the age of the oldest (scans the pending rows).
  tenantBacklog: `select tenant_id, pending::int as pending,
        extract(epoch from now() - oldest)::float8 as oldest_seconds
      from (${pendingPerTenant(tables)}) per_tenant order by tenant_id`,
  listDead: `select id::text as id, message_id::text as message_id, tenant_id, exchange, routing_key,
        message_type, attempts, last_error, dead_at
      from ${tables.messages} where ${DEAD_SELECTION}
      order by dead_at, id limit $3`,
  // Back to pending, attempts from zero; last_error stays as a record.
  retryDead: `update ${tables.messages} set dead_at = null, attempts = 0, available_at = now()
      where ${DEAD_SELECTION}`,
  discardDead: `delete from ${tables.messages} where ${DEAD_SELECTION}`,
  // Discard up to $3 pending rows of tenant $1 created before $2 (a range on
  // tenant_id and ordering by (tenant_id, id): messages_pending_idx serves it).
  purgeTenant: `delete from ${tables.messages} where id in (
        select id from ${tables.messages}
        where tenant_id >= $1 and tenant_id <= $1 and ${pending()}
          and created_at < $2
        order by tenant_id, id limit $3)`,
  deleteExpired: `delete from ${tables.messages} where id in (
        select id from ${tables.messages} where published_at < now() - $1 * interval '1 millisecond'
        order by published_at limit $2)`,
}));

/** One tenant's backlog, for `outbox-relay tenants`. */
export interface TenantBacklog {
  tenant_id: string;
  pending: number;
  oldest_seconds: number;
}

/** Pending rows and the oldest pending age, per tenant with any. */
export function tenantBacklog(store: OutboxStore): Promise<TenantBacklog[]> {
  return store.db.run<TenantBacklog>(
    statements(store.schema).tenantBacklog,
    [],
    `outbox_tenant_backlog_${store.schema}`,
  );
}

/** A dead row, for `outbox-relay dead list`. */
export interface DeadRow {
  id: string;
  message_id: string;
  tenant_id: string;
  exchange: string;
  routing_key: string;
  message_type: string | null;
  attempts: number;
  last_error: string | null;
  dead_at: Date;
}

/** Which dead rows an operation applies to: some ids, one tenant's, or (both null) all. */
export interface DeadSelection {
  ids: readonly string[] | null;
  tenantId: string | null;
}

/** Dead rows, oldest first, at most `limit`. */
export function listDead(
  store: OutboxStore,
  selection: DeadSelection,
  limit: number,
): Promise<DeadRow[]> {
  return store.db.run<DeadRow>(
    statements(store.schema).listDead,
    [selection.ids, selection.tenantId, limit],
    `outbox_list_dead_${store.schema}`,
  );
}

/**
 * Retries dead rows (back to pending, attempts from zero) or discards them
 * for good; returns how many.
 */
export async function changeDead(
  store: OutboxStore,
  change: 'retry' | 'discard',
  selection: DeadSelection,
): Promise<number> {
  const { retryDead, discardDead } = statements(store.schema);
  const text = change === 'retry' ? retryDead : discardDead;
  const result = await store.pool.query(text, [selection.ids, selection.tenantId]);
  return result.rowCount ?? 0;
}

/**
 * Runs a statement that deletes at most `batch` rows (its last parameter)
 * until one deletes fewer: large deletions in small transactions, so none
 * holds long locks or writes a burst of WAL. Returns how many in all.
 */
async function deleteInBatches(
  store: OutboxStore,
  name: string,
  text: string,
  values: readonly unknown[],
  batch: number,
): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await store.pool.query({ name, text, values: [...values, batch] });
    const deleted = result.rowCount ?? 0;
    total += deleted;
    if (deleted < batch) return total;
  }
}

/**
 * Deletes a tenant's pending rows created before `before`, in statements of
 * `batch` rows so no long lock or transaction builds up; returns how many.
 */
export function purgeTenant(
  store: OutboxStore,
  tenantId: string,
  before: Date,
  batch = 5000,
): Promise<number> {
  return deleteInBatches(
    store,
    `outbox_purge_tenant_${store.schema}`,
    statements(store.schema).purgeTenant,
    [tenantId, before],
    batch,
  );
}

/** Deletes every published row older than the retention period, `batch` at a time; returns how many. */
export function deleteExpired(
  store: OutboxStore,
  retentionMs: number,
  batch: number,
): Promise<number> {
  return deleteInBatches(
    store,
    `outbox_delete_expired_${store.schema}`,
    statements(store.schema).deleteExpired,
    [retentionMs],
    batch,
  );
}
