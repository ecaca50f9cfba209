/**
 * What the metrics read: the backlog (pending, held and dead rows, the
 * largest backlogs by tenant, the tenants' write-rate terms) and the id
 * sequence's high-water mark (the relay's cheap "new rows?" hint).
 */
import type { OutboxStore } from './outbox-store.js';
import { type OutboxTables, perSchema } from './outbox-tables.js';
import { dead, pending } from './row-state.js';
import { inTransaction } from './transaction.js';

/**
 * Pending rows and the oldest and newest one's creation time, per tenant:
 * what the `tenants` command and the backlog metrics both read.
 */
export function pendingPerTenant(tables: OutboxTables): string {
  return `select tenant_id, count(*) as pending, min(created_at) as oldest,
      max(created_at) as newest
    from ${tables.messages} where ${pending()} group by tenant_id`;
}

const statements = perSchema((tables) => ({
  readSequence: `select last_value::text as last_value, is_called from ${tables.idSequence}`,
  // Metrics, and `tenants --top`: one pass over the pending rows, grouped by
  // tenant, read two ways (in one statement, so one snapshot).
  // - 'backlog' rows: the $1 largest backlogs, the rest folded into one row
  //   with a null tenant; held = pending rows of the paused tenants $2; plus
  //   the dead row count.
  // - 'activity' rows, the two terms of the write rate: pending rows, and the
  //   rows claimed so far (tenant_leases.claimed, migration 0004), of each
  //   tenant that wrote (a pending row created since $3) or was claimed (its
  //   lease runs until $3 or later: every claim sets it past the claim's
  //   start) since $3. Outside that set neither term changed since $3, so
  //   the caller keeps its earlier values. $3 null: every tenant with pending
  //   rows or a lease row, a first read's baseline.
  // Cost grows with the backlog (see docs/operations.md); rows returned grow
  // with $1 and with the tenants active since $3.
  backlogStats: `with per_tenant as (${pendingPerTenant(tables)}),
      ranked as (
        select *, row_number() over (order by pending desc, tenant_id) as rank from per_tenant
      ),
      dead as (select count(*)::float8 as n from ${tables.messages} where ${dead()}),
      active as (
        select tenant_id from per_tenant where $3::timestamptz is null or newest >= $3
        union
        select tenant_id from ${tables.leases} where $3::timestamptz is null or leased_until >= $3
      )
      select 'backlog' as section, case when rank <= $1 then tenant_id end as tenant_id,
        sum(pending)::float8 as pending,
        coalesce(extract(epoch from now() - min(oldest)), 0)::float8 as oldest_seconds,
        coalesce(sum(pending) filter (where tenant_id = any ($2::text[])), 0)::float8 as held,
        (select n from dead) as dead, 0::float8 as claimed, now() as read_at
      from ranked group by 2
      union all
      select 'backlog', null, 0, 0, 0, (select n from dead), 0, now()
      where not exists (select 1 from per_tenant)
      union all
      select 'activity', a.tenant_id, coalesce(p.pending, 0)::float8,
        coalesce(extract(epoch from now() - p.oldest), 0)::float8, 0, 0,
        coalesce(l.claimed, 0)::float8, now()
      from active a
      left join per_tenant p on p.tenant_id = a.tenant_id
      left join ${tables.leases} l on l.tenant_id = a.tenant_id`,
}));

/**
 * Reads the id sequence's high-water mark. This takes no lock that writers
 * wait on; it changes when a row is inserted (before its commit), so it is a
 * hint that new rows may be coming, never proof that they are visible.
 */
export async function readSequence(store: OutboxStore): Promise<string> {
  const result = await store.pool.query<{ last_value: string; is_called: boolean }>({
    name: `outbox_read_sequence_${store.schema}`,
    text: statements(store.schema).readSequence,
  });
  const row = result.rows[0];
  return row ? `${row.last_value}:${row.is_called}` : '';
}

/** One tenant's write-rate terms at one read (see {@link readBacklogStats}). */
export interface TenantActivity {
  tenant: string;
  /** Pending rows (held ones included). */
  pending: number;
  /** Age of the oldest pending row (0 when none). */
  oldestSeconds: number;
  /** Rows claimed so far (tenant_leases.claimed; 0 without a lease row). */
  claimed: number;
}

/** The backlog as the metrics report it. */
export interface BacklogStats {
  pending: number;
  oldestSeconds: number;
  held: number;
  dead: number;
  /** The largest backlogs by tenant; `tenant` undefined sums all the others. */
  tenants: { tenant: string | undefined; pending: number; oldestSeconds: number }[];
  /** The tenants that wrote or were claimed since `activeSince` (all of them without it). */
  activity: TenantActivity[];
  /** The database's time of the read (its transaction's start). */
  readAt: Date;
}

/** What {@link readBacklogStats} reads. */
export interface BacklogReadOptions {
  /** How many of the largest backlogs get a row of their own. */
  topTenants: number;
  /** Their pending rows count as held. */
  pausedTenants: readonly string[];
  /** The statement's time limit. */
  timeoutMs: number;
  /**
   * Return activity only for the tenants that wrote or were claimed since
   * then (database time); null or absent: every tenant with pending rows or a
   * lease row.
   */
  activeSince?: Date | null;
}

/** One row of the backlog statement. */
interface BacklogRow {
  section: 'backlog' | 'activity';
  tenant_id: string | null;
  pending: number;
  oldest_seconds: number;
  held: number;
  dead: number;
  claimed: number;
  read_at: Date;
}

/**
 * Reads the backlog gauges and the tenants' write-rate terms in one
 * read-only statement, bounded by `timeoutMs` so that a huge backlog can
 * never make it run for long.
 */
export async function readBacklogStats(
  store: OutboxStore,
  options: BacklogReadOptions,
): Promise<BacklogStats> {
  // Bounded in time; one core, no parallel workers; group in memory (about
  // 0.4 s per million pending rows over 100k tenants, measured). No JIT: the
  // activity join's row estimate is far too high, and at a million pending
  // rows compiling the plan cost 0.26 s, more than half of running it. One
  // round trip.
  const begin = `begin read only;
    set local statement_timeout = ${Math.max(1, Math.round(options.timeoutMs))};
    set local max_parallel_workers_per_gather = 0; set local work_mem = '32MB';
    set local jit = off`;
  const rows = await inTransaction(store.pool, begin, async (client) => {
    const result = await client.query<BacklogRow>(statements(store.schema).backlogStats, [
      options.topTenants,
      options.pausedTenants,
      options.activeSince ?? null,
    ]);
    return result.rows;
  });
  const stats: BacklogStats = {
    pending: 0,
    oldestSeconds: 0,
    held: 0,
    dead: 0,
    tenants: [],
    activity: [],
    readAt: rows[0]?.read_at ?? new Date(),
  };
  for (const row of rows) {
    if (row.section === 'activity') {
      stats.activity.push({
        tenant: row.tenant_id ?? '',
        pending: row.pending,
        oldestSeconds: row.oldest_seconds,
        claimed: row.claimed,
      });
      continue;
    }
    stats.pending += row.pending;
    stats.held += row.held;
    stats.dead = row.dead;
    stats.oldestSeconds = Math.max(stats.oldestSeconds, row.oldest_seconds);
    if (row.pending > 0) {
      stats.tenants.push({
        tenant: row.tenant_id ?? undefined,
        pending: row.pending,
        oldestSeconds: row.oldest_seconds,
      });
    }
  }
  return stats;
}
