-- Serves the claim's key walk. When a tenant's oldest pending rows belong to
-- an ordering key blocked behind a row that is backing off, the window the
-- claim reads in messages_pending_idx order is all unclaimable; the claim
-- then steps over that tenant's distinct ordering keys instead (one probe
-- each) and reads a few of each key's oldest rows. A blocked key then costs
-- a handful of reads, not its backlog, and the tenant's other keys go on.
--
-- The tenant and the ordering scope (the ordering key, or the tenant id when
-- there is none) are indexed by hashes, not their text:
-- - the walk starts at a random point of the key hash space, which spreads
--   its starts evenly over the keys whatever their names, so no key waits
--   behind others for long;
-- - with no tenant_id column, this index can serve no condition on tenant_id,
--   so the claim's tenant probes and windows can only use
--   messages_pending_idx, and the walk's reads (which name no tenant_id) only
--   this index: neither can be planned into a scan of a tenant's backlog,
--   whatever the statistics say;
-- - each entry holds three eight-byte values, whatever the names' length.
-- Keys or tenants whose hashes collide share a slot; the claim still orders
-- each key by itself. hashtextextended is immutable (hash partitioning relies
-- on it).
--
-- Built inside the migration's transaction: it blocks inserts into messages
-- while it builds (about 1 s per million pending rows, measured), which takes
-- moments on an outbox of normal size. Its lock waits at most 5 s for writers'
-- transactions to finish (inserts queue behind a waiting lock): past that the
-- migration fails, changes nothing, and can simply be run again.
set local lock_timeout = '5s';
create index messages_pending_key_idx
  on messages (
    hashtextextended(tenant_id, 0),
    hashtextextended(coalesce(ordering_key, tenant_id), 0),
    id
  )
  where published_at is null and dead_at is null;
