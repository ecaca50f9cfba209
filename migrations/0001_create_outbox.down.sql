drop table tenant_leases;
drop table messages;
