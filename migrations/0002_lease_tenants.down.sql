alter table messages add column claimed_by uuid, add column claimed_until timestamptz;
alter table messages set (fillfactor = 80);
drop table tenant_leases;
