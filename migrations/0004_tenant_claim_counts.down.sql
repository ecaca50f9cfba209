alter table tenant_leases drop column claimed;
