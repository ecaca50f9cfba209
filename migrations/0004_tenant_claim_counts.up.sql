-- How many rows each tenant has had claimed, for the per-tenant write rate
-- (flood detection): the backlog read adds the change of a tenant's pending
-- rows to the change of this count between two reads. It is kept in the lease
-- row the claim writes anyway, so it costs no statement and nothing per insert.
--
-- A lease row now outlives its lease: releasing a lease ends it (leased_until
-- in the past) instead of deleting it, and the sweep deletes rows idle for an
-- hour, so a count survives relay restarts and drops only for idle tenants.
alter table tenant_leases add column claimed bigint not null default 0;
