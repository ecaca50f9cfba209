drop table flag_snapshot;
drop table flag_snapshot_environments;
