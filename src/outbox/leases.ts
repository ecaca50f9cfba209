/**
 * Tenant leases (tenant_leases: which relay publishes a tenant, until when)
 * and the relay's liveness lock, which makes a dead relay's leases open at
 * once (docs/architecture.md, "Liveness and failover"). The claim takes and
 * checks leases in SQL (sql/claim.sql); these are the other statements.
 */
import type pg from 'pg';
import type { OutboxStore } from './outbox-store.js';
import { perSchema, quoteLiteral } from './outbox-tables.js';

const statements = perSchema((tables) => ({
  // Ends this relay's leases; the rows stay for their claimed counts (migration 0004).
  releaseLeases: `update ${tables.leases} set leased_until = now() - interval '1 second'
      where relay_id = $1 and leased_until >= now() - interval '1 second'`,
  // An expired lease means the same as none. Rows idle for an hour go, so
  // the table stays about as small as the number of tenants writing lately.
  sweepLeases: `delete from ${tables.leases} where leased_until < now() - interval '1 hour' returning 1`,
  // The relay's liveness lock, for the session. The key is the one the claim
  // tries (sql/claim.sql, `alive` and `open_tenants`): keep the two alike.
  holdLiveness: `select pg_try_advisory_lock(hashtextextended(${quoteLiteral(`outbox-relay:live:${tables.schema}:`)} || $1::uuid::text, 0)) as held`,
}));

/**
 * Gives back every tenant lease this relay holds (shutdown): other relays may
 * take those tenants at once; rows not yet confirmed are published again.
 */
export async function releaseLeases(store: OutboxStore, relayId: string): Promise<void> {
  await store.db.run(
    statements(store.schema).releaseLeases,
    [relayId],
    `outbox_release_leases_${store.schema}`,
  );
}

/** Deletes expired tenant leases; returns how many. */
export async function sweepLeases(store: OutboxStore): Promise<number> {
  const rows = await store.db.run<unknown>(
    statements(store.schema).sweepLeases,
    [],
    `outbox_sweep_leases_${store.schema}`,
  );
  return rows.length;
}

/**
 * Tries to take relay `relayId`'s liveness lock for the session of `client`
 * (a connection the relay keeps for as long as it lives); resolves whether it did.
 */
export async function holdLiveness(
  store: OutboxStore,
  client: pg.ClientBase,
  relayId: string,
): Promise<boolean> {
  const { rows } = await client.query<{ held: boolean }>(statements(store.schema).holdLiveness, [
    relayId,
  ]);
  return rows[0]?.held === true;
}
