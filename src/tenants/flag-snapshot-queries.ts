/**
 * All SQL of the flag snapshot (migration 0005): the last LaunchDarkly flag
 * data the relays received, kept in the outbox schema so that a relay started
 * while LaunchDarkly is unreachable applies it instead of failing open.
 *
 * - `flag_snapshot` holds one row per flag or segment (the SDK's item as JSON,
 *   deletion placeholders included) of one LaunchDarkly environment.
 * - `flag_snapshot_environments` says that a full data set of the environment
 *   was saved, when it last changed and when a relay last received it.
 *
 * Invariants the writes keep, whichever relays write and in whatever order:
 * - An item's version never goes down: a row is replaced only by a higher
 *   version (`flag_snapshot.version < excluded.version`).
 * - A row is deleted (its item left LaunchDarkly's data, or the flags the
 *   relay evaluates no longer need it) only if it still holds a version the
 *   deleting relay knew, never one written since by a relay that knew more.
 * - Writes to one environment are serialised by a transaction-scoped advisory
 *   lock, so concurrent writers never deadlock on each other's rows.
 * - Times are PostgreSQL's `now()`: relays' clocks do not matter.
 */
import type pg from 'pg';
import type { FlagDataNamespace } from './flag-item-json.js';

/** One saved item, as read. */
export interface SnapshotRow {
  kind: FlagDataNamespace;
  key: string;
  version: number;
  item: Record<string, unknown> & { version: number; deleted?: boolean };
}

/** What a relay knows was saved: when, how old (by PostgreSQL's clock) and the items. */
export interface SavedSnapshot {
  confirmedAt: Date;
  changedAt: Date;
  ageSeconds: number;
  rows: SnapshotRow[];
}

/** One change to save: an item at a version (JSON text), or a row to delete at the version known. */
export interface SnapshotWrite {
  upserts: { kind: FlagDataNamespace; key: string; version: number; json: string }[];
  deletes: { kind: FlagDataNamespace; key: string; version: number }[];
  /** A full data set was received from LaunchDarkly since the last write: it confirms the snapshot. */
  confirmed: boolean;
}

/** Statement texts for one outbox schema. */
export interface FlagSnapshotStatements {
  readonly schema: string;
  readonly lock: string;
  readonly readEnvironment: string;
  readonly readItems: string;
  readonly write: string;
}

/** Builds the statements for `schema` (a validated lower-case identifier). */
export function flagSnapshotStatements(schema: string): FlagSnapshotStatements {
  const s = `"${schema}"`;
  return {
    schema,
    lock: `select pg_advisory_xact_lock(hashtextextended('outbox-relay:flag-snapshot:' || $1::text || ':' || $2::text, 0))`,
    readEnvironment: `
      select changed_at, confirmed_at,
             extract(epoch from now() - confirmed_at)::float8 as age_seconds
      from ${s}.flag_snapshot_environments where environment = $1`,
    readItems: `
      select kind, key, version::float8 as version, item
      from ${s}.flag_snapshot where environment = $1`,
    // $1 environment; $2 items to save [{kind,key,version,item}];
    // $3 rows to delete [{kind,key,version}]; $4 whether a full data set confirmed the snapshot.
    write: `
      with incoming as (
        select * from jsonb_to_recordset($2::jsonb) as i(kind text, key text, version bigint, item jsonb)
      ), upserted as (
        insert into ${s}.flag_snapshot as f (environment, kind, key, version, item)
        select $1, kind, key, version, item from incoming order by kind, key
        on conflict (environment, kind, key) do update
          set version = excluded.version, item = excluded.item, saved_at = now()
          where f.version < excluded.version
        returning 1
      ), removed as (
        delete from ${s}.flag_snapshot f
        using jsonb_to_recordset($3::jsonb) as d(kind text, key text, version bigint)
        where f.environment = $1 and f.kind = d.kind and f.key = d.key and f.version <= d.version
        returning 1
      ), changed as (
        select (select count(*) from upserted) + (select count(*) from removed) as rows
      )
      insert into ${s}.flag_snapshot_environments as e (environment, changed_at, confirmed_at)
      select $1, now(), now() from changed
      on conflict (environment) do update
        set changed_at = case when (select rows from changed) > 0 then now() else e.changed_at end,
            confirmed_at = now()
        -- A confirmation alone is written at most once a minute, however many relays connect.
        where (select rows from changed) > 0
           or ($4::boolean and e.confirmed_at < now() - interval '1 minute')
      returning (select rows from changed)::int as changed`,
  };
}

/** Reads the saved snapshot of `environment`; undefined when none was ever saved. */
export async function readSnapshot(
  pool: pg.Pool,
  statements: FlagSnapshotStatements,
  environment: string,
): Promise<SavedSnapshot | undefined> {
  const meta = await pool.query<{ changed_at: Date; confirmed_at: Date; age_seconds: number }>(
    statements.readEnvironment,
    [environment],
  );
  const row = meta.rows[0];
  if (!row) return undefined;
  const items = await pool.query<SnapshotRow>(statements.readItems, [environment]);
  return {
    changedAt: row.changed_at,
    confirmedAt: row.confirmed_at,
    ageSeconds: Math.max(0, row.age_seconds),
    rows: items.rows,
  };
}

/** Saves `write` for `environment` in one transaction; returns how many rows changed. */
export async function writeSnapshot(
  pool: pg.Pool,
  statements: FlagSnapshotStatements,
  environment: string,
  write: SnapshotWrite,
): Promise<number> {
  const items = `[${write.upserts
    .map(
      (u) =>
        `{"kind":${JSON.stringify(u.kind)},"key":${JSON.stringify(u.key)},"version":${u.version},"item":${u.json}}`,
    )
    .join(',')}]`;
  const client = await pool.connect();
  try {
    await client.query('begin');
    await client.query(statements.lock, [statements.schema, environment]);
    const { rows } = await client.query<{ changed: number }>(statements.write, [
      environment,
      items,
      JSON.stringify(write.deletes),
      write.confirmed,
    ]);
    await client.query('commit');
    return rows[0]?.changed ?? 0;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
