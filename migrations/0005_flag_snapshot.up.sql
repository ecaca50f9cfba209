-- The kill switch remembers: the last LaunchDarkly flag data the relays
-- received, so that a relay started while LaunchDarkly is unreachable applies
-- it (a paused tenant stays paused) instead of failing open. Written by the
-- relays only when the data changes (src/tenants/flag-snapshot-queries.ts).

-- One row per LaunchDarkly environment whose full data set was saved.
-- `environment` is a SHA-256 prefix of the SDK key: one snapshot per
-- environment, and the key itself is never stored.
create table flag_snapshot_environments (
  environment  text primary key,
  -- When a saved item last changed.
  changed_at   timestamptz not null,
  -- When a relay last received this data from LaunchDarkly (a change, or a
  -- full data set on connecting, at most once a minute): the snapshot's age.
  confirmed_at timestamptz not null
);

-- The flags the relay evaluates and what they depend on (prerequisite flags,
-- segments), as the SDK received them, deletion placeholders included. A
-- row's version only ever goes up.
create table flag_snapshot (
  environment text   not null,
  kind        text   not null check (kind in ('features', 'segments')),
  key         text   not null,
  version     bigint not null,
  item        jsonb  not null,
  saved_at    timestamptz not null default now(),
  primary key (environment, kind, key)
);
