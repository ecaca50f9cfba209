/**
 * All SQL that touches the outbox table, and nothing else. Each function takes
 * the executor (or pool) first, then the schema's statements.
 *
 * The row's life — see docs/architecture.md for the diagram:
 *
 *   pending ──claim──▶ in flight at one relay (its tenant is leased to that relay)
 *      ▲                 │  broker ack ──▶ published (deleted, or kept for retention)
 *      │                 │  nack/return ─▶ pending again at available_at (attempts + 1)
 *      │                 │               └▶ dead after max attempts
 *      └─ lease expiry ──┘  (the relay died) or released on shutdown
 *
 * A paused tenant's rows stay pending: the claim skips the tenant in SQL.
 *
 * Invariants the claim keeps:
 * - A claim first picks its tenants and takes a transaction-scoped advisory
 *   lock per tenant (a try: a tenant another claim holds right now is simply
 *   left to it), and the claim statement runs after that, so its snapshot sees
 *   every earlier claim's leases of its tenants. Claims of different tenants
 *   never wait for each other.
 * - A tenant is leased to one relay at a time (tenant_leases): no other relay
 *   claims its rows until the lease is released or expires, so no row is
 *   published twice and one tenant's rows go out in id order while nothing fails.
 * - The relay that holds a tenant passes the ids it has in flight; the claim
 *   skips exactly those. It never resumes "after" an id: a lower id can commit
 *   after a higher one, and a cursor past it would skip it.
 * - Within a tenant, a row is claimed only when every earlier pending row of
 *   its ordering key is available (not backing off after a failure) or in
 *   flight at this relay, and a key's rows are picked in id order.
 * - One blocked key never stalls its tenant's other keys. A claim reads each
 *   tenant's oldest pending rows (its window); a tenant whose full window has
 *   rows it cannot claim is then walked key by key, from a random point in key
 *   order (messages_pending_key_idx), a few rows per key. The walk is bounded
 *   by the tenant's share, in keys and in rows, so a blocked key costs a few
 *   reads, never its backlog, and a claim stays O(batch). Tenants that are
 *   not stuck never walk.
 */
import type pg from 'pg';
import type { EncodedMessage } from './message.js';
import type { SqlExecutor } from './sql-executor.js';

const LIVENESS_KEY_PREFIX = 'outbox-relay:live:';

/** Statement texts for one outbox schema, built once. */
export interface OutboxStatements {
  readonly schema: string;
  readonly notifyChannel: string;
  /** LISTEN on the notify channel (for the relay's wake-ups). */
  readonly listen: string;
  /** Whether the messages table exists (migrated). */
  readonly tableExists: string;
  readonly beginClaim: string;
  /** Picks the tenants of a claim and takes their claim locks (the statement before the claim). */
  readonly claimTenants: string;
  /** Takes the liveness lock of relay $1 for the session (the key the claim tries). */
  readonly holdLiveness: string;
  readonly insert: string;
  readonly insertAndNotify: string;
  readonly insertOne: string;
  readonly insertOneAndNotify: string;
  readonly claim: string;
  readonly deletePublished: string;
  readonly markPublished: string;
  readonly releaseLeases: string;
  readonly sweepLeases: string;
  readonly tenantBacklog: string;
  readonly purgeTenant: string;
  readonly listDead: string;
  readonly retryDead: string;
  readonly discardDead: string;
  readonly recordFailures: string;
  readonly deleteExpired: string;
  readonly readSequence: string;
  readonly fetchPayloads: string;
  readonly backlogStats: string;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Builds the statements for the outbox in `schema` (a validated identifier). */
export function outboxStatements(schema: string): OutboxStatements {
  const t = `${quoteIdent(schema)}.messages`;
  const leases = `${quoteIdent(schema)}.tenant_leases`;
  const insertColumns =
    'message_id, tenant_id, ordering_key, exchange, routing_key, message_type, payload, content_type, headers';
  const unnest =
    'select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[], $9::jsonb[])';
  const pendingM = 'm.published_at is null and m.dead_at is null';
  const notifyChannel = `outbox_relay_${schema}`;
  // Pending rows and the oldest and newest one's creation time, per tenant:
  // what the `tenants` command and the backlog metrics both read.
  const pendingPerTenant = `select tenant_id, count(*) as pending, min(created_at) as oldest,
      max(created_at) as newest
    from ${t} where published_at is null and dead_at is null group by tenant_id`;
  // A row's tenant and ordering scope as messages_pending_key_idx (migration
  // 0003) holds them: hashes, and no tenant_id column, so that index can serve
  // no tenant_id condition and the tenant reads keep to messages_pending_idx.
  const tenantHash = 'hashtextextended(m.tenant_id, 0)';
  // A relay's liveness lock, from its id (an SQL expression): held by holdLiveness, tried by the claim.
  const liveKey = (relayId: string) =>
    `hashtextextended('${LIVENESS_KEY_PREFIX}${schema}:' || ${relayId}, 0)`;
  const keyHash = 'hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0)';
  return {
    schema,
    notifyChannel,
    listen: `listen ${quoteIdent(notifyChannel)}`,
    tableExists: `select to_regclass('${t.replace(/'/g, "''")}') is not null as exists`,
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
    beginClaim: `begin isolation level read committed;
      select set_config('idle_in_transaction_session_timeout', '5000', true),
        pg_advisory_xact_lock_shared(hashtextextended('outbox-relay:claim:${schema}', 0)), set_config('jit', 'off', true)`,
    // $1 relay id, $2 round-robin cursor (last tenant served), $3 most tenants to visit,
    // $4 paused tenants. Walks the tenants with pending rows from the cursor
    // (a skip scan over messages_pending_idx, one probe per tenant, wrapping
    // round once), keeps those this relay may take (not paused; unleased,
    // leased to it, expired, or leased to a relay whose liveness lock is free)
    // and of those the ones whose claim lock it gets at once; another claim
    // holding a tenant's lock right now has it, and this claim leaves it. The
    // lease check here reads an older snapshot than the claim's and only
    // spares locks: the claim statement checks the leases again.
    // Returns the locked tenants in visit order, and whether the walk reached
    // its limit (more tenants may be waiting).
    claimTenants: `with recursive visit (tenant_id, wrapped, n) as (
        select s.tenant_id, s.wrapped, 1
        from (
          (select m.tenant_id, false as wrapped, m.created_at from ${t} m
            where ${pendingM} and m.tenant_id > $2 order by m.tenant_id limit 1)
          union all
          (select m.tenant_id, true, m.created_at from ${t} m where ${pendingM} order by m.tenant_id limit 1)
          limit 1
        ) s
      union all
        select nx.tenant_id, nx.wrapped, v.n + 1
        from visit v
        cross join lateral (
          (select m.tenant_id, v.wrapped, m.created_at from ${t} m
            where ${pendingM} and m.tenant_id > v.tenant_id order by m.tenant_id limit 1)
          union all
          (select m.tenant_id, true, m.created_at from ${t} m
            where not v.wrapped and ${pendingM} order by m.tenant_id limit 1)
          limit 1
        ) nx
        where v.n < $3 and not (nx.wrapped and nx.tenant_id > $2)
      ),
      open_tenants as (
        select v.tenant_id, v.n
        from visit v
        left join ${leases} l on l.tenant_id = v.tenant_id
        where case
          when v.tenant_id = any ($4::text[]) then false
          when l.tenant_id is null or l.relay_id = $1 or l.leased_until < now() then true
          else pg_try_advisory_xact_lock(${liveKey('l.relay_id::text')})
        end
      ),
      -- A volatile function: this CTE is computed once, each lock tried once.
      locked as (
        select tenant_id, n from open_tenants
        where pg_try_advisory_xact_lock(hashtextextended('outbox-relay:claim:${schema}:' || tenant_id, 0))
      )
      select array(select tenant_id from locked order by n) as tenants,
        (select count(*) from visit) >= $3 as walked_limit`,
    holdLiveness: `select pg_try_advisory_lock(${liveKey('$1::uuid::text')}) as held`,
    // Returned columns are one lower-case word each (id, mid): clients that
    // rename result columns (postgres.js transform, Knex postProcessResponse,
    // Kysely CamelCasePlugin) leave them as they are.
    insert: `insert into ${t} (${insertColumns}) ${unnest} returning id::text as id, message_id::text as mid`,
    // One message, the common case: plain VALUES, so the payload travels as a
    // binary parameter (pg sends bytea[] elements as hex text).
    insertOne: `insert into ${t} (${insertColumns}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      returning id::text as id, message_id::text as mid`,
    insertOneAndNotify: `with inserted as (insert into ${t} (${insertColumns})
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id, message_id),
      notified as (select pg_notify($10, ''))
      select inserted.id::text as id, inserted.message_id::text as mid from inserted cross join notified`,
    insertAndNotify: `with inserted as (insert into ${t} (${insertColumns}) ${unnest} returning id, message_id),
      notified as (select pg_notify($10, ''))
      select inserted.id::text as id, inserted.message_id::text as mid from inserted cross join notified`,
    // $1 relay id, $2 the tenants claimTenants locked (in visit order), $3 whether its
    // walk reached its limit, $4 fewest rows to read per tenant, $5 batch size,
    // $6 lease seconds, $7 ids this relay has in flight, $8 whether this relay
    // must hold its liveness lock. Paused tenants need no check here:
    // claimTenants never locks them, and the claim serves only what it locked.
    // The tenant and key probes read a heap column (created_at) on purpose: a plain
    // index scan marks the index entries of deleted rows dead as it passes
    // them, where an index-only scan would fetch them again on every claim.
    claim: `with recursive visit (tenant_id, n) as (
        select v.tenant_id, v.n::int from unnest($2::text[]) with ordinality as v (tenant_id, n)
      ),
      -- Whether this relay may claim: it holds its liveness lock (on a
      -- session of its own), so the try below, from this session, fails. A
      -- relay that lost that session without noticing yet claims nothing.
      alive as (
        select case when $8::bool then not pg_try_advisory_xact_lock(${liveKey('$1::uuid::text')}) else true end as ok
      ),
      -- Tenants nobody else holds: unleased, leased to this relay, expired,
      -- or leased to a relay whose liveness lock is free (it died: its
      -- session ended). The try takes that lock until this claim commits.
      open_tenants as (
        select v.tenant_id, v.n
        from visit v
        left join ${leases} l on l.tenant_id = v.tenant_id
        where (select ok from alive)
          and case
            when l.tenant_id is null or l.relay_id = $1 or l.leased_until < now() then true
            else pg_try_advisory_xact_lock(${liveKey('l.relay_id::text')})
          end
      ),
      share as (
        select greatest($4::int, ceil($5::numeric / greatest(count(*), 1)))::int as rows_per_tenant
        from open_tenants
      ),
      candidates as (
        select t.n, c.*
        from open_tenants t
        cross join lateral (
          select m.id, m.tenant_id, coalesce(m.ordering_key, m.tenant_id) as ordering_scope,
            m.available_at <= now() as free
          from ${t} m
          -- A range on tenant_id and ordering by (tenant_id, id): only
          -- messages_pending_idx serves this, so the planner can never walk the
          -- primary key through other tenants' (or a paused tenant's) rows.
          -- Every claim starts at the tenant's oldest pending row, never after
          -- a remembered id: a lower id can commit after a higher one, and a
          -- cursor past it would skip it.
          where m.tenant_id >= t.tenant_id and m.tenant_id <= t.tenant_id and ${pendingM}
            -- This relay's rows in flight, checked on the index entry against a
            -- hash of them. Not '<> all ($7)': the claim is a named statement,
            -- and in the generic plan PostgreSQL uses after five runs that
            -- compares each row with every id in flight, one by one (46 µs of
            -- server CPU per claimed row against 22, measured at 1M rows).
            and m.id not in (select unnest($7::bigint[]))
          order by m.tenant_id, m.id
          limit (select rows_per_tenant from share)
        ) c
      ),
      ranked as (
        select id, tenant_id, n,
          bool_and(free) over (partition by tenant_id, ordering_scope order by id) as claimable
        from candidates
      ),
      per_tenant as (
        select tenant_id, min(n) as n, max(id) as last_id, count(*) as rows,
          count(*) filter (where claimable) as claimable
        from ranked
        group by tenant_id
      ),
      -- More is probably waiting if a tenant filled its share or the visit hit its tenant limit.
      saturation as (
        select coalesce(bool_or(rows >= (select rows_per_tenant from share)), false)
          or $3::bool as more
        from per_tenant
      ),
      -- A full window with unclaimable rows: a blocked key may fill it and hide
      -- the tenant's other keys. Only these tenants are walked key by key, for
      -- what their window lacks of a full share, past its last row.
      stuck as (
        select tenant_id, hashtextextended(tenant_id, 0) as tenant_hash, n, last_id,
          (select rows_per_tenant from share) - claimable as wanted
        from per_tenant
        where rows >= (select rows_per_tenant from share) and claimable < rows
      ),
      -- A skip scan over a stuck tenant's keys in messages_pending_key_idx
      -- order (a hash of the ordering scope), from a random point, wrapping
      -- round once, one probe per key; of each key it reads the oldest pending
      -- rows, a tenth of the share at most, and applies the prefix rule per
      -- scope (keys whose hashes collide share a slot). It stops at a share's
      -- worth of keys or of rows read, or once it found what the window
      -- lacked: a blocked key costs a few rows, never its backlog, and from
      -- random starts every key gets its turn.
      key_walk (tenant_id, tenant_hash, n, last_id, wanted, start_hash, key_hash, wrapped, keys, reads,
          found, ids) as (
          select s.tenant_id, s.tenant_hash, s.n, s.last_id, s.wanted, s.start_hash, s.start_hash, false,
            0, 0, 0, null::bigint[]
          from (select st.*, hashtextextended(random()::text, 0) as start_hash from stuck st) s
        union all
          select w.tenant_id, w.tenant_hash, w.n, w.last_id, w.wanted, w.start_hash, k.key_hash,
            k.wrapped, w.keys + 1, w.reads + r.reads, w.found + r.found, r.ids
          from key_walk w
          cross join lateral (
            (select ${keyHash} as key_hash, w.wrapped, m.created_at from ${t} m
              where ${tenantHash} = w.tenant_hash and ${pendingM} and ${keyHash} > w.key_hash
              order by ${tenantHash}, ${keyHash}, m.id limit 1)
            union all
            (select ${keyHash}, true, m.created_at from ${t} m
              where not w.wrapped and ${tenantHash} = w.tenant_hash and ${pendingM}
              order by ${tenantHash}, ${keyHash}, m.id limit 1)
            limit 1
          ) k
          cross join lateral (
            select count(*)::int as reads,
              count(*) filter (where kr.ok and kr.id > w.last_id)::int as found,
              array_agg(kr.id) filter (where kr.ok and kr.id > w.last_id) as ids
            from (
              select kr.id, bool_and(kr.free) over (partition by kr.ordering_scope order by kr.id) as ok
              from (
                select m.id, m.tenant_id, coalesce(m.ordering_key, m.tenant_id) as ordering_scope,
                  m.available_at <= now() as free
                from ${t} m
                where ${tenantHash} = w.tenant_hash and ${keyHash} = k.key_hash and ${pendingM}
                  and m.id not in (select unnest($7::bigint[]))
                order by ${tenantHash}, ${keyHash}, m.id
                limit (select ceil(rows_per_tenant / 10.0)::int from share)
              ) kr
              -- Outside the limit: a tenant_id condition in the scan would let the
              -- planner read the key's rows through messages_pending_idx, crossing
              -- the tenant's backlog. (Tenants whose hashes collide share slots.)
              where kr.tenant_id = w.tenant_id
            ) kr
          ) r
          where w.keys < (select rows_per_tenant from share)
            and w.reads < (select rows_per_tenant from share)
            and w.found < w.wanted
            and not (k.wrapped and k.key_hash > w.start_hash)
      ),
      -- The window's claimable rows, and the walk's (all past the window: no overlap).
      claimable as (
        select id, tenant_id, n from ranked where claimable
        union all
        select unnest(ids), tenant_id, n from key_walk
      ),
      -- Each tenant's claimable rows in id order, tenants interleaved (the first
      -- of every tenant before the second of any, a stuck tenant's walked rows
      -- included): cutting at $5 leaves every key's picked rows a prefix.
      picked as (
        select id, tenant_id, n
        from (
          select id, tenant_id, n, row_number() over (partition by tenant_id order by id) as position
          from claimable
        ) c
        order by position, n limit $5
      ),
      -- The lease, and the tenant's count of claimed rows (its write rate; migration 0004).
      leased as (
        insert into ${leases} (tenant_id, relay_id, leased_until, claimed)
        select tenant_id, $1::uuid, now() + make_interval(secs => $6), count(*) from picked
        group by tenant_id
        on conflict (tenant_id) do update
          set relay_id = excluded.relay_id, leased_until = excluded.leased_until,
            claimed = ${leases}.claimed + excluded.claimed
      )
      -- '= any(array(...))': O(batch) primary-key lookups, never a join against
      -- the whole table. No payload here: the claim runs under its tenants'
      -- claim locks, so it returns only what is small; each batch fetches its payloads after.
      select m.id::text as id, m.message_id::text as message_id, m.tenant_id, m.ordering_key,
        m.exchange, m.routing_key, m.message_type, m.content_type, m.headers,
        (extract(epoch from m.created_at) * 1000)::float8 as created_ms, m.attempts,
        (select p.tenant_id from picked p order by p.n desc limit 1) as next_cursor,
        (select more from saturation) as more
      from ${t} m
      where m.id = any (array(select id from picked))`,
    deletePublished: `delete from ${t} where id = any ($1::bigint[])`,
    markPublished: `update ${t} set published_at = now() where id = any ($1::bigint[])`,
    // Ends this relay's leases; the rows stay for their claimed counts (migration 0004).
    releaseLeases: `update ${leases} set leased_until = now() - interval '1 second'
      where relay_id = $1 and leased_until >= now() - interval '1 second'`,
    // An expired lease means the same as none. Rows idle for an hour go, so
    // the table stays about as small as the number of tenants writing lately.
    sweepLeases: `delete from ${leases} where leased_until < now() - interval '1 hour' returning 1`,
    // Ops: pending rows per tenant with the age of the oldest (scans the pending rows).
    tenantBacklog: `select tenant_id, pending::int as pending,
        extract(epoch from now() - oldest)::float8 as oldest_seconds
      from (${pendingPerTenant}) per_tenant order by tenant_id`,
    // Ops on dead rows; $1 ids (or null), $2 tenant (or null), $3 limit where there is one.
    listDead: `select id::text as id, message_id::text as message_id, tenant_id, exchange, routing_key,
        message_type, attempts, last_error, dead_at
      from ${t} where dead_at is not null
        and ($1::bigint[] is null or id = any ($1)) and ($2::text is null or tenant_id = $2)
      order by dead_at, id limit $3`,
    // Back to pending, attempts from zero; last_error stays as a record.
    retryDead: `update ${t} set dead_at = null, attempts = 0, available_at = now()
      where dead_at is not null and ($1::bigint[] is null or id = any ($1)) and ($2::text is null or tenant_id = $2)`,
    discardDead: `delete from ${t}
      where dead_at is not null and ($1::bigint[] is null or id = any ($1)) and ($2::text is null or tenant_id = $2)`,
    // Ops: discard up to $3 pending rows of tenant $1 created before $2.
    purgeTenant: `delete from ${t} where id in (
        select id from ${t}
        where tenant_id >= $1 and tenant_id <= $1 and published_at is null and dead_at is null
          and created_at < $2
        order by tenant_id, id limit $3)`,
    // $1 ids, $2 errors, $3 whether each failure counts as an attempt, $4 max attempts,
    // $5 whether each failure is permanent (dead at once: retrying cannot help).
    recordFailures: `update ${t} m set
        attempts = m.attempts + (case when f.counts then 1 else 0 end),
        last_error = f.error,
        available_at = case when f.counts
          then now() + least(interval '5 minutes', interval '1 second' * power(2, least(m.attempts, 12)))
          else m.available_at end,
        dead_at = case when f.permanent or (f.counts and m.attempts + 1 >= $4) then now() else m.dead_at end
      from unnest($1::bigint[], $2::text[], $3::bool[], $5::bool[]) as f (id, error, counts, permanent)
      where m.id = f.id
      returning m.id::text as id, m.dead_at is not null as dead`,
    deleteExpired: `delete from ${t} where id in (
        select id from ${t} where published_at < now() - $1 * interval '1 millisecond'
        order by published_at limit $2)`,
    readSequence: `select last_value::text as last_value, is_called from ${quoteIdent(schema)}.messages_id_seq`,
    // Plain bytea (hex text on the wire): encoding base64 in the server and
    // decoding it in Node cost more than the larger hex text does (7.2 + 8.2
    // µs per row against 4.3 + 5.4, measured).
    fetchPayloads: `select id::text as id, payload from ${t} where id = any ($1::bigint[])`,
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
    backlogStats: `with per_tenant as (${pendingPerTenant}),
      ranked as (
        select *, row_number() over (order by pending desc, tenant_id) as rank from per_tenant
      ),
      dead as (select count(*)::float8 as n from ${t} where dead_at is not null),
      active as (
        select tenant_id from per_tenant where $3::timestamptz is null or newest >= $3
        union
        select tenant_id from ${leases} where $3::timestamptz is null or leased_until >= $3
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
      left join ${leases} l on l.tenant_id = a.tenant_id`,
  };
}

/** What `insertMessages` returns per row, in input order. */
export interface InsertedMessage {
  /** The row's id (a bigint, as a decimal string). */
  id: string;
  messageId: string;
}

/** Inserts rows in one statement; optionally sends a wake-up NOTIFY in the same statement. */
export async function insertMessages(
  db: SqlExecutor,
  statements: OutboxStatements,
  rows: readonly EncodedMessage[],
  options: { notify: boolean; preparedStatements?: boolean },
): Promise<InsertedMessage[]> {
  // Unnamed by default: a transaction pooler (PgBouncer in transaction mode,
  // Supavisor, RDS Proxy) cannot keep a named statement on one client.
  const named = (name: string) => (options.preparedStatements ? name : undefined);
  if (rows.length === 1) {
    const r = rows[0] as EncodedMessage;
    const values: unknown[] = [
      r.messageId,
      r.tenantId,
      r.orderingKey,
      r.exchange,
      r.routingKey,
      r.messageType,
      r.payload,
      r.contentType,
      r.headers,
    ];
    if (options.notify) values.push(statements.notifyChannel);
    const [row] = await db.run<{ id: string; mid: string }>(
      options.notify ? statements.insertOneAndNotify : statements.insertOne,
      values,
      named(`outbox_insert_one_${options.notify ? 'notify_' : ''}${statements.schema}`),
    );
    return [{ id: row?.id ?? '', messageId: r.messageId }];
  }
  const values: unknown[] = [
    rows.map((r) => r.messageId),
    rows.map((r) => r.tenantId),
    rows.map((r) => r.orderingKey),
    rows.map((r) => r.exchange),
    rows.map((r) => r.routingKey),
    rows.map((r) => r.messageType),
    rows.map((r) => r.payload),
    rows.map((r) => r.contentType),
    rows.map((r) => r.headers),
  ];
  const text = options.notify ? statements.insertAndNotify : statements.insert;
  if (options.notify) values.push(statements.notifyChannel);
  const inserted = await db.run<{ id: string; mid: string }>(
    text,
    values,
    named(`outbox_insert_${options.notify ? 'notify_' : ''}${statements.schema}`),
  );
  // Map back by message id so the result follows the input order whatever
  // order RETURNING used; a message id given twice maps in id order.
  const byMessageId = new Map<string, string[]>();
  for (const row of [...inserted].sort((a, b) => compareIds(a.id, b.id))) {
    const ids = byMessageId.get(row.mid) ?? [];
    ids.push(row.id);
    byMessageId.set(row.mid, ids);
  }
  return rows.map((r) => ({
    id: byMessageId.get(r.messageId)?.shift() ?? '',
    messageId: r.messageId,
  }));
}

/** Orders decimal bigint strings numerically. */
function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

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
  /** The same on every row: the last tenant this claim served, where the next one starts. */
  next_cursor: string;
  /** The same on every row: whether more rows are probably claimable right away. */
  more: boolean;
}

/** Parameters of one claim. */
export interface ClaimParams {
  relayId: string;
  /** Last tenant served by the previous claim; '' starts from the first tenant. */
  cursor: string;
  maxTenants: number;
  minRowsPerTenant: number;
  batchSize: number;
  leaseMs: number;
  pausedTenants: readonly string[];
  /** Ids this relay has claimed and not yet settled: the claim skips them. */
  inFlight: readonly string[];
  /** Claim nothing unless this relay holds its liveness lock (default true). */
  requireLiveness?: boolean;
}

/** The tenants one claim may serve: what claimTenants locked. */
export interface ClaimTenants {
  /** Locked for this claim, in visit order. */
  tenants: string[];
  /** The walk reached its tenant limit: more tenants may be waiting. */
  walked_limit: boolean;
}

/** The claimTenants statement's positional parameters ($1 … $4), from named ones. */
export function claimTenantValues(params: ClaimParams): unknown[] {
  return [params.relayId, params.cursor, params.maxTenants, params.pausedTenants];
}

/**
 * A claim's parameters for a claim made outside a relay (tests, the bench):
 * a relay's defaults (100 tenants, at least 10 rows each, a 60 s lease), a
 * batch of 500, from the first tenant, nothing paused or in flight; `change`
 * overrides any of them.
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
    pausedTenants: [],
    inFlight: [],
    ...change,
  };
}

/** The claim statement's positional parameters ($1 … $8), from named ones and its tenants. */
export function claimValues(params: ClaimParams, visited: ClaimTenants): unknown[] {
  return [
    params.relayId,
    visited.tenants,
    visited.walked_limit,
    params.minRowsPerTenant,
    params.batchSize,
    params.leaseMs / 1000,
    // An array literal built in one join: the ids are decimal digits, so they
    // need none of the per-element quoting pg would otherwise do (thousands
    // of ids per claim).
    `{${params.inFlight.join(',')}}`,
    params.requireLiveness ?? true,
  ];
}

/**
 * Picks the tenants of a claim and takes their claim locks, in the claim's
 * transaction (a statement of its own: the claim's snapshot must come after
 * the locks). Tenants another claim holds right now are left out.
 */
export async function lockClaimTenants(
  client: pg.ClientBase,
  statements: OutboxStatements,
  params: ClaimParams,
): Promise<ClaimTenants> {
  const result = await client.query<ClaimTenants>({
    name: `outbox_claim_tenants_${statements.schema}`,
    text: statements.claimTenants,
    values: claimTenantValues(params),
  });
  return result.rows[0] ?? { tenants: [], walked_limit: false };
}

/**
 * Leases up to `batchSize` rows, interleaving tenants round-robin. Runs in a
 * short transaction of its own that holds a claim lock for each tenant it
 * serves (claims of other tenants run alongside); no lock or transaction
 * outlives this call. Rows come back in id order.
 */
export async function claimBatch(
  pool: pg.Pool,
  statements: OutboxStatements,
  params: ClaimParams,
): Promise<ClaimedRow[]> {
  // One round trip (simple protocol, no parameters: the schema is a validated
  // identifier) to begin and turn JIT off; one to lock the tenants; one to claim.
  return inTransaction(pool, statements.beginClaim, async (client) => {
    const visited = await lockClaimTenants(client, statements, params);
    if (visited.tenants.length === 0) return [];
    const result = await client.query<ClaimedRow>({
      name: `outbox_claim_${statements.schema}`,
      text: statements.claim,
      values: claimValues(params, visited),
    });
    return result.rows.sort((a, b) => compareIds(a.id, b.id));
  });
}

/**
 * Runs `work` in a transaction on a connection of its own: `begin` (one
 * simple-protocol text that opens the transaction and sets it up), `work`,
 * commit; rollback on failure. A connection that failed in any way is
 * discarded, not reused.
 */
async function inTransaction<T>(
  pool: pg.Pool,
  begin: string,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: unknown;
  // pg's pool listens for errors only on idle clients: a connection that dies
  // while checked out (terminated, network lost) between two statements would
  // emit an 'error' nobody handles and take the process down. createPool's
  // pools listen already; an application's own pool may not.
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    await client.query(begin);
    try {
      const result = await work(client);
      await client.query('commit');
      return result;
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    }
  } catch (error) {
    broken = error;
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/**
 * Reads the payloads of claimed rows, outside the claim lock. Rows deleted
 * meanwhile (an operator purged them) are simply missing from the map.
 */
export async function fetchPayloads(
  pool: pg.Pool,
  statements: OutboxStatements,
  ids: readonly string[],
): Promise<Map<string, Buffer>> {
  const result = await pool.query<{ id: string; payload: Buffer }>({
    name: `outbox_fetch_payloads_${statements.schema}`,
    text: statements.fetchPayloads,
    values: [ids],
  });
  return new Map(result.rows.map((row) => [row.id, row.payload]));
}

/** Removes rows the broker confirmed (retention 0). */
export async function deletePublished(
  db: SqlExecutor,
  statements: OutboxStatements,
  ids: readonly string[],
): Promise<void> {
  if (ids.length === 0) return;
  await db.run(statements.deletePublished, [ids], `outbox_delete_published_${statements.schema}`);
}

/** Marks rows the broker confirmed as published, to be deleted after the retention period. */
export async function markPublished(
  db: SqlExecutor,
  statements: OutboxStatements,
  ids: readonly string[],
): Promise<void> {
  if (ids.length === 0) return;
  await db.run(statements.markPublished, [ids], `outbox_mark_published_${statements.schema}`);
}

/**
 * Gives back every tenant lease this relay holds (shutdown): other relays may
 * take those tenants at once; rows not yet confirmed are published again.
 */
export async function releaseLeases(
  db: SqlExecutor,
  statements: OutboxStatements,
  relayId: string,
): Promise<void> {
  await db.run(statements.releaseLeases, [relayId], `outbox_release_leases_${statements.schema}`);
}

/** Deletes expired tenant leases; returns how many. */
export async function sweepLeases(db: SqlExecutor, statements: OutboxStatements): Promise<number> {
  const rows = await db.run<unknown>(
    statements.sweepLeases,
    [],
    `outbox_sweep_leases_${statements.schema}`,
  );
  return rows.length;
}

/** One tenant's backlog, for `outbox-relay tenants`. */
export interface TenantBacklog {
  tenant_id: string;
  pending: number;
  oldest_seconds: number;
}

/** Pending rows and the oldest pending age, per tenant with any. */
export async function tenantBacklog(
  db: SqlExecutor,
  statements: OutboxStatements,
): Promise<TenantBacklog[]> {
  return db.run<TenantBacklog>(
    statements.tenantBacklog,
    [],
    `outbox_tenant_backlog_${statements.schema}`,
  );
}

/**
 * Deletes a tenant's pending rows created before `before`, in statements of
 * `batch` rows so no long lock or transaction builds up; returns how many.
 */
export function purgeTenant(
  pool: pg.Pool,
  statements: OutboxStatements,
  tenantId: string,
  before: Date,
  batch = 5000,
): Promise<number> {
  return deleteInBatches(
    pool,
    `outbox_purge_tenant_${statements.schema}`,
    statements.purgeTenant,
    [tenantId, before],
    batch,
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
export async function listDead(
  db: SqlExecutor,
  statements: OutboxStatements,
  selection: DeadSelection,
  limit: number,
): Promise<DeadRow[]> {
  return db.run<DeadRow>(
    statements.listDead,
    [selection.ids, selection.tenantId, limit],
    `outbox_list_dead_${statements.schema}`,
  );
}

/**
 * Retries dead rows (back to pending, attempts from zero) or discards them
 * for good; returns how many.
 */
export async function changeDead(
  pool: pg.Pool,
  statements: OutboxStatements,
  change: 'retry' | 'discard',
  selection: DeadSelection,
): Promise<number> {
  const text = change === 'retry' ? statements.retryDead : statements.discardDead;
  const result = await pool.query(text, [selection.ids, selection.tenantId]);
  return result.rowCount ?? 0;
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
  db: SqlExecutor,
  statements: OutboxStatements,
  failures: readonly PublishFailure[],
  maxAttempts: number,
): Promise<string[]> {
  if (failures.length === 0) return [];
  const rows = await db.run<{ id: string; dead: boolean }>(
    statements.recordFailures,
    [
      failures.map((f) => f.id),
      failures.map((f) => f.error.slice(0, 2000)),
      failures.map((f) => f.countsAsAttempt || f.permanent === true),
      maxAttempts,
      failures.map((f) => f.permanent === true),
    ],
    `outbox_record_failures_${statements.schema}`,
  );
  return rows.filter((r) => r.dead).map((r) => r.id);
}

/**
 * Runs a statement that deletes at most `batch` rows (its last parameter)
 * until one deletes fewer: large deletions in small transactions, so none
 * holds long locks or writes a burst of WAL. Returns how many in all.
 */
async function deleteInBatches(
  pool: pg.Pool,
  name: string,
  text: string,
  values: readonly unknown[],
  batch: number,
): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await pool.query({ name, text, values: [...values, batch] });
    const deleted = result.rowCount ?? 0;
    total += deleted;
    if (deleted < batch) return total;
  }
}

/** Deletes every published row older than the retention period, `batch` at a time; returns how many. */
export function deleteExpired(
  pool: pg.Pool,
  statements: OutboxStatements,
  retentionMs: number,
  batch: number,
): Promise<number> {
  return deleteInBatches(
    pool,
    `outbox_delete_expired_${statements.schema}`,
    statements.deleteExpired,
    [retentionMs],
    batch,
  );
}

/**
 * Reads the id sequence's high-water mark. This takes no lock that writers
 * wait on; it changes when a row is inserted (before its commit), so it is a
 * hint that new rows may be coming, never proof that they are visible.
 */
export async function readSequence(pool: pg.Pool, statements: OutboxStatements): Promise<string> {
  const result = await pool.query<{ last_value: string; is_called: boolean }>({
    name: `outbox_read_sequence_${statements.schema}`,
    text: statements.readSequence,
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

/**
 * Reads the backlog gauges and the tenants' write-rate terms in one
 * read-only statement, bounded by `timeoutMs` so that a huge backlog can
 * never make it run for long.
 */
export async function readBacklogStats(
  pool: pg.Pool,
  statements: OutboxStatements,
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
  const rows = await inTransaction(pool, begin, async (client) => {
    const result = await client.query<{
      section: 'backlog' | 'activity';
      tenant_id: string | null;
      pending: number;
      oldest_seconds: number;
      held: number;
      dead: number;
      claimed: number;
      read_at: Date;
    }>(statements.backlogStats, [
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

/** Whether the outbox table of `statements.schema` exists (the schema is migrated). */
export async function outboxTableExists(
  db: SqlExecutor,
  statements: OutboxStatements,
): Promise<boolean> {
  const [row] = await db.run<{ exists: boolean }>(statements.tableExists, []);
  return row?.exists === true;
}
