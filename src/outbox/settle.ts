/**
 * Settling a batch after the broker answered: confirmed rows are deleted (or
 * marked published, for retention), failed ones back off or go dead.
 */
import type { OutboxStore } from './outbox-store.js';
import { perSchema } from './outbox-tables.js';

const statements = perSchema((tables) => ({
  deletePublished: `delete from ${tables.messages} where id = any ($1::bigint[])`,
  markPublished: `update ${tables.messages} set published_at = now() where id = any ($1::bigint[])`,
  // $1 ids, $2 errors, $3 whether each failure counts as an attempt, $4 max attempts,
  // $5 whether each failure is permanent (dead at once: retrying cannot help).
  recordFailures: `update ${tables.messages} m set
        attempts = m.attempts + (case when f.counts then 1 else 0 end),
        last_error = f.error,
        available_at = case when f.counts
          then now() + least(interval '5 minutes', interval '1 second' * power(2, least(m.attempts, 12)))
          else m.available_at end,
        dead_at = case when f.permanent or (f.counts and m.attempts + 1 >= $4) then now() else m.dead_at end
      from unnest($1::bigint[], $2::text[], $3::bool[], $5::bool[]) as f (id, error, counts, permanent)
      where m.id = f.id
      returning m.id::text as id, m.dead_at is not null as dead`,
}));

/** Removes rows the broker confirmed (retention 0). */
export async function deletePublished(store: OutboxStore, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await store.db.run(
    statements(store.schema).deletePublished,
    [ids],
    `outbox_delete_published_${store.schema}`,
  );
}

/** Marks rows the broker confirmed as published, to be deleted after the retention period. */
export async function markPublished(store: OutboxStore, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await store.db.run(
    statements(store.schema).markPublished,
    [ids],
    `outbox_mark_published_${store.schema}`,
  );
}

/** One failed publish to record. */
export interface PublishFailure {
  id: string;
  error: string;
  countsAsAttempt: boolean;
  /** Dead at once: retrying cannot help. */
  permanent?: boolean;
}

/**
 * Records failed publishes: counted failures back off exponentially (1 s,
 * 2 s, 4 s … capped at 5 min) and go dead after `maxAttempts`, permanent ones
 * go dead at once; uncounted ones are simply released. Returns the ids that went dead.
 */
export async function recordFailures(
  store: OutboxStore,
  failures: readonly PublishFailure[],
  maxAttempts: number,
): Promise<string[]> {
  if (failures.length === 0) return [];
  const rows = await store.db.run<{ id: string; dead: boolean }>(
    statements(store.schema).recordFailures,
    [
      failures.map((f) => f.id),
      failures.map((f) => f.error.slice(0, 2000)),
      failures.map((f) => f.countsAsAttempt || f.permanent === true),
      maxAttempts,
      failures.map((f) => f.permanent === true),
    ],
    `outbox_record_failures_${store.schema}`,
  );
  return rows.filter((r) => r.dead).map((r) => r.id);
}
