-- Picks the tenants of one claim and takes their claim locks: the statement
-- a claim runs first, in its own transaction (src/outbox/claim.ts), so that
-- the claim statement (claim.sql) takes its snapshot after these locks.
-- How a claim works as a whole: docs/architecture.md, "Claiming".
--
-- Run it by hand (it only reads, and takes transaction-scoped locks):
--   psql -v schema=outbox -v relay_id=<uuid> -v cursor= -v max_tenants=100 \
--     -v skipped_tenants='{}' -f sql/claim-tenants.sql
-- `outbox-relay claim --explain` prints a script with realistic values.
--
-- Variables (src/outbox/claim-sql.ts maps them to $1 … $4 from ClaimParams):
--   schema           the outbox schema (an identifier, and in lock keys a string)
--   relay_id         this relay's id (a uuid)
--   cursor           the last tenant the previous claim served ('' = from the first)
--   max_tenants      most tenants to visit
--   skipped_tenants  tenants whose rows stay pending this claim: paused, or
--                    throttled with no token left (a text[] literal)
--
-- "Pending" is the rule of src/outbox/row-state.ts: published_at is null and
-- dead_at is null (messages_pending_idx and messages_pending_key_idx hold
-- exactly those rows).
--
-- Returns the locked tenants in visit order, and whether the walk reached its
-- limit (more tenants may be waiting).
with recursive
  -- The tenants with pending rows, from the cursor on: a skip scan over
  -- messages_pending_idx, one probe per tenant, wrapping round once.
  visit (tenant_id, wrapped, n) as (
    select s.tenant_id, s.wrapped, 1
    from (
      (select m.tenant_id, false as wrapped, m.created_at from :"schema".messages m
        where m.published_at is null and m.dead_at is null and m.tenant_id > :'cursor'
        order by m.tenant_id limit 1)
      union all
      (select m.tenant_id, true, m.created_at from :"schema".messages m
        where m.published_at is null and m.dead_at is null
        order by m.tenant_id limit 1)
      limit 1
    ) s
  union all
    select nx.tenant_id, nx.wrapped, v.n + 1
    from visit v
    cross join lateral (
      (select m.tenant_id, v.wrapped, m.created_at from :"schema".messages m
        where m.published_at is null and m.dead_at is null and m.tenant_id > v.tenant_id
        order by m.tenant_id limit 1)
      union all
      (select m.tenant_id, true, m.created_at from :"schema".messages m
        where not v.wrapped and m.published_at is null and m.dead_at is null
        order by m.tenant_id limit 1)
      limit 1
    ) nx
    where v.n < :'max_tenants' and not (nx.wrapped and nx.tenant_id > :'cursor')
  ),
  -- The tenants this relay may take: not skipped (paused or throttled); unleased, leased to it,
  -- expired, or leased to a relay whose liveness lock is free (it died). This
  -- reads an older snapshot than the claim's and only spares locks: the claim
  -- statement checks the leases again.
  open_tenants as (
    select v.tenant_id, v.n
    from visit v
    left join :"schema".tenant_leases l on l.tenant_id = v.tenant_id
    where case
      when v.tenant_id = any (:'skipped_tenants'::text[]) then false
      when l.tenant_id is null or l.relay_id = :'relay_id' or l.leased_until < now() then true
      else pg_try_advisory_xact_lock(hashtextextended('outbox-relay:live:' || :'schema' || ':' || l.relay_id::text, 0))
    end
  ),
  -- The ones whose claim lock this claim gets at once; another claim holding
  -- a tenant's lock right now has it, and this claim leaves it. A volatile
  -- function: this CTE is computed once, each lock tried once.
  locked as (
    select tenant_id, n from open_tenants
    where pg_try_advisory_xact_lock(hashtextextended('outbox-relay:claim:' || :'schema' || ':' || tenant_id, 0))
  )
select array(select tenant_id from locked order by n) as tenants,
  (select count(*) from visit) >= :'max_tenants' as walked_limit;
