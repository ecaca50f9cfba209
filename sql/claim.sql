-- The claim: leases up to batch_size pending rows of the tenants that
-- claim-tenants.sql locked, interleaving tenants round-robin, and returns
-- them with their payloads. It runs second in the claim's transaction
-- (src/outbox/claim.ts), after claim-tenants.sql, so its snapshot sees every
-- earlier claim's leases of its tenants.
--
-- How a claim works as a whole, and the invariants it keeps (one relay per
-- tenant, id order per ordering key, a blocked key never stalls its tenant):
-- docs/architecture.md, "Claiming".
--
-- Run it by hand, inside a transaction you roll back (it writes leases):
--   outbox-relay claim --explain        prints a psql script with realistic values
-- or by hand:
--   psql -v schema=outbox -v relay_id=<uuid> -v tenants='{a,b}' -v walked_limit=false \
--     -v min_rows_per_tenant=10 -v batch_size=500 -v lease_seconds=60 -v in_flight='{}' \
--     -v require_liveness=false -f sql/claim.sql
--
-- Variables (src/outbox/claim-sql.ts maps them to $1 … $8 from ClaimParams):
--   schema               the outbox schema (an identifier, and in lock keys a string)
--   relay_id             this relay's id (a uuid)
--   tenants              what claim-tenants.sql locked, in visit order (a text[] literal)
--   walked_limit         whether that walk reached its tenant limit
--   min_rows_per_tenant  fewest rows to read per tenant
--   batch_size           most rows to claim
--   lease_seconds        how long the tenants' leases run
--   in_flight            ids this relay has in flight, skipped (a bigint[] literal)
--   require_liveness     claim nothing unless this relay holds its liveness lock
-- Paused tenants need no check here: claim-tenants.sql never locks them, and
-- the claim serves only what it locked.
--
-- "Pending" is the rule of src/outbox/row-state.ts: published_at is null and
-- dead_at is null (messages_pending_idx and messages_pending_key_idx hold
-- exactly those rows).
--
-- The tenant and key probes read a heap column (created_at) on purpose: a
-- plain index scan marks the index entries of deleted rows dead as it passes
-- them, where an index-only scan would fetch them again on every claim.
with recursive
  -- The locked tenants, in visit order (n).
  visit (tenant_id, n) as (
    select v.tenant_id, v.n::int from unnest(:'tenants'::text[]) with ordinality as v (tenant_id, n)
  ),
  -- Whether this relay may claim: it holds its liveness lock (on a session of
  -- its own), so the try below, from this session, fails. A relay that lost
  -- that session without noticing yet claims nothing.
  alive as (
    select case when :'require_liveness'::bool
      then not pg_try_advisory_xact_lock(hashtextextended('outbox-relay:live:' || :'schema' || ':' || :'relay_id'::uuid::text, 0))
      else true end as ok
  ),
  -- Tenants nobody else holds: unleased, leased to this relay, expired, or
  -- leased to a relay whose liveness lock is free (it died: its session
  -- ended). The try takes that lock until this claim commits.
  open_tenants as (
    select v.tenant_id, v.n
    from visit v
    left join :"schema".tenant_leases l on l.tenant_id = v.tenant_id
    where (select ok from alive)
      and case
        when l.tenant_id is null or l.relay_id = :'relay_id' or l.leased_until < now() then true
        else pg_try_advisory_xact_lock(hashtextextended('outbox-relay:live:' || :'schema' || ':' || l.relay_id::text, 0))
      end
  ),
  -- Rows each tenant may take: an equal share of the batch, at least min_rows_per_tenant.
  share as (
    select greatest(:'min_rows_per_tenant'::int, ceil(:'batch_size'::numeric / greatest(count(*), 1)))::int as rows_per_tenant
    from open_tenants
  ),
  -- Each tenant's window: its oldest pending rows, a share of them, and
  -- whether each is available (not backing off after a failure).
  candidates as (
    select t.n, c.*
    from open_tenants t
    cross join lateral (
      select m.id, m.ctid, m.tenant_id, coalesce(m.ordering_key, m.tenant_id) as ordering_scope,
        m.available_at <= now() as free
      from :"schema".messages m
      -- A range on tenant_id and ordering by (tenant_id, id): only
      -- messages_pending_idx serves this, so the planner can never walk the
      -- primary key through other tenants' (or a paused tenant's) rows.
      -- Every claim starts at the tenant's oldest pending row, never after
      -- a remembered id: a lower id can commit after a higher one, and a
      -- cursor past it would skip it.
      where m.tenant_id >= t.tenant_id and m.tenant_id <= t.tenant_id
        and m.published_at is null and m.dead_at is null
        -- This relay's rows in flight, checked against a hash of them. A
        -- plain index scan checks it on the row, after fetching it from the
        -- heap (EXPLAIN: "Filter: (NOT (hashed SubPlan …))"), so each row in
        -- flight in a tenant's window costs a heap fetch per claim: the price
        -- of never resuming after an id. Not '<> all (in_flight)': the claim is a named
        -- statement, and in the generic plan PostgreSQL uses after five runs
        -- that compares each row with every id in flight, one by one (46 µs
        -- of server CPU per claimed row against 22, measured at 1M rows).
        and m.id not in (select unnest(:'in_flight'::bigint[]))
      order by m.tenant_id, m.id
      limit (select rows_per_tenant from share)
    ) c
  ),
  -- The prefix rule: a row is claimable only when every earlier row of its
  -- ordering scope in the window is available.
  ranked as (
    select id, ctid, tenant_id, n,
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
      or :'walked_limit'::bool as more
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
  -- A skip scan over a stuck tenant's keys in messages_pending_key_idx order
  -- (a hash of the ordering scope; that index holds hashes and no tenant_id
  -- column, so it serves no tenant_id condition and the tenant reads keep to
  -- messages_pending_idx), from a random point, wrapping round once, one
  -- probe per key; of each key it reads the oldest pending rows, a tenth of
  -- the share at most, and applies the prefix rule per scope (keys whose
  -- hashes collide share a slot). It stops at a share's worth of keys or of
  -- rows read, or once it found what the window lacked: a blocked key costs a
  -- few rows, never its backlog, and from random starts every key gets its turn.
  key_walk (tenant_id, tenant_hash, n, last_id, wanted, start_hash, key_hash, wrapped, keys, reads,
      found, ids, ctids) as (
      select s.tenant_id, s.tenant_hash, s.n, s.last_id, s.wanted, s.start_hash, s.start_hash, false,
        0, 0, 0, null::bigint[], null::tid[]
      from (select st.*, hashtextextended(random()::text, 0) as start_hash from stuck st) s
    union all
      select w.tenant_id, w.tenant_hash, w.n, w.last_id, w.wanted, w.start_hash, k.key_hash,
        k.wrapped, w.keys + 1, w.reads + r.reads, w.found + r.found, r.ids, r.ctids
      from key_walk w
      cross join lateral (
        (select hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0) as key_hash, w.wrapped, m.created_at
          from :"schema".messages m
          where hashtextextended(m.tenant_id, 0) = w.tenant_hash
            and m.published_at is null and m.dead_at is null
            and hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0) > w.key_hash
          order by hashtextextended(m.tenant_id, 0), hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0), m.id
          limit 1)
        union all
        (select hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0), true, m.created_at
          from :"schema".messages m
          where not w.wrapped and hashtextextended(m.tenant_id, 0) = w.tenant_hash
            and m.published_at is null and m.dead_at is null
          order by hashtextextended(m.tenant_id, 0), hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0), m.id
          limit 1)
        limit 1
      ) k
      cross join lateral (
        select count(*)::int as reads,
          count(*) filter (where kr.ok and kr.id > w.last_id)::int as found,
          array_agg(kr.id) filter (where kr.ok and kr.id > w.last_id) as ids,
          array_agg(kr.ctid) filter (where kr.ok and kr.id > w.last_id) as ctids
        from (
          select kr.id, kr.ctid, bool_and(kr.free) over (partition by kr.ordering_scope order by kr.id) as ok
          from (
            select m.id, m.ctid, m.tenant_id, coalesce(m.ordering_key, m.tenant_id) as ordering_scope,
              m.available_at <= now() as free
            from :"schema".messages m
            where hashtextextended(m.tenant_id, 0) = w.tenant_hash
              and hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0) = k.key_hash
              and m.published_at is null and m.dead_at is null
              and m.id not in (select unnest(:'in_flight'::bigint[]))
            order by hashtextextended(m.tenant_id, 0), hashtextextended(coalesce(m.ordering_key, m.tenant_id), 0), m.id
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
    select id, ctid, tenant_id, n from ranked where claimable
    union all
    select u.id, u.ctid, w.tenant_id, w.n from key_walk w cross join unnest(w.ids, w.ctids) as u (id, ctid)
  ),
  -- Each tenant's claimable rows in id order, tenants interleaved (the first
  -- of every tenant before the second of any, a stuck tenant's walked rows
  -- included): cutting at batch_size leaves every key's picked rows a prefix.
  picked as (
    select id, ctid, tenant_id, n
    from (
      select id, ctid, tenant_id, n, row_number() over (partition by tenant_id order by id) as position
      from claimable
    ) c
    order by position, n limit :'batch_size'
  ),
  -- Each picked tenant's count of claimed rows (its write rate; migration 0004).
  counts as (
    select tenant_id, count(*) as claimed from picked group by tenant_id
  ),
  -- The lease: renewed in place where the tenant has a lease row (nearly
  -- always: a lease row outlives its lease), inserted where it has none. A
  -- plain update, not an upsert for every tenant: 'on conflict do update'
  -- first tries the insert, then locks and rewrites the row it conflicted
  -- with, about 2.4 µs of server CPU per claimed row at 10 rows a tenant
  -- against 1.0 this way (measured in docs/benchmarks.md). The insert keeps
  -- its 'on conflict': a row another claim inserted meanwhile is renewed.
  renewed as (
    update :"schema".tenant_leases l
    set relay_id = :'relay_id'::uuid, leased_until = now() + make_interval(secs => :'lease_seconds'),
      claimed = l.claimed + c.claimed
    from counts c
    where l.tenant_id = c.tenant_id
    returning l.tenant_id
  ),
  leased as (
    insert into :"schema".tenant_leases (tenant_id, relay_id, leased_until, claimed)
    select tenant_id, :'relay_id'::uuid, now() + make_interval(secs => :'lease_seconds'), claimed
    from counts
    where tenant_id not in (select tenant_id from renewed)
    on conflict (tenant_id) do update
      set relay_id = excluded.relay_id, leased_until = excluded.leased_until,
        claimed = :"schema".tenant_leases.claimed + excluded.claimed
  )
-- The picked rows read again, with their payloads, by their row addresses
-- (ctid, from the scans above): a TID scan, O(batch), never a join against
-- the whole table, and no second descent of the primary key per row (about
-- 1 µs of server CPU per row, measured in docs/benchmarks.md). The same
-- statement, so the same snapshot: each address holds the very row version
-- the scans saw. The payloads come with the rows: a separate read after the
-- claim cost a second lookup per row and a round trip per batch.
select m.id::text as id, m.message_id::text as message_id, m.tenant_id, m.ordering_key,
  m.exchange, m.routing_key, m.message_type, m.content_type, m.headers,
  (extract(epoch from m.created_at) * 1000)::float8 as created_ms, m.attempts, m.payload,
  (select p.tenant_id from picked p order by p.n desc limit 1) as next_cursor,
  (select more from saturation) as more
from :"schema".messages m
where m.ctid = any (array(select ctid from picked));
