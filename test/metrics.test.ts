/**
 * Metric cardinality stays bounded whatever the number of tenants: the
 * backlog read returns the top N tenants plus one folded row, and the
 * exposition holds N + 1 per-tenant series, with 100,000 tenants pending.
 * The same read returns the write-rate terms (pending rows, claimed count) of
 * the tenants active since a given time only.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { createPool } from '../src/db/pool.js';
import { silentLogger } from '../src/log/logger.js';
import { BacklogMonitor } from '../src/metrics/backlog-monitor.js';
import { RelayMetrics } from '../src/metrics/prometheus-metrics.js';
import { readBacklogStats } from '../src/outbox/backlog-stats.js';
import { createOutboxStore } from '../src/outbox/outbox-store.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('metrics');

const idleSources = {
  broker: () => ({ connected: true, blocked: undefined, channels: 2 }),
  pausedTenants: () => 0,
  throttledTenants: () => 0,
  inFlight: () => 0,
  readiness: () => ({ database: true, broker: true, flags: true }),
};

describe('backlog metrics', () => {
  it('label only the top N of 100,000 tenants; the rest are one "other" series', async () => {
    const { db } = fixture;
    // 100,000 tenants with one row each, plus tenant-0 ... tenant-4 with 10 - i more.
    await db.pool.query(
      `insert into "${db.schema}".messages (tenant_id, exchange, payload)
       select 'tenant-' || g, 'x', '\\x7b7d'::bytea from generate_series(0, 99999) g
       union all
       select 'tenant-' || i, 'x', '\\x7b7d'::bytea from generate_series(0, 4) i, generate_series(1, 10 - i) r`,
    );
    await db.pool.query(
      `update "${db.schema}".messages set dead_at = now() where tenant_id = 'tenant-99999'`,
    );
    const stats = await readBacklogStats(db.store, {
      topTenants: 3,
      pausedTenants: ['tenant-1', 'tenant-7'],
      timeoutMs: 10_000,
    });
    const extra = 10 + 9 + 8 + 7 + 6;
    expect(stats.pending).toBe(99_999 + extra);
    expect(stats.dead).toBe(1);
    expect(stats.held).toBe(1 + 9 + 1);
    expect(stats.oldestSeconds).toBeGreaterThanOrEqual(0);
    expect(stats.tenants.map((t) => [t.tenant, t.pending])).toEqual(
      expect.arrayContaining([
        ['tenant-0', 11],
        ['tenant-1', 10],
        ['tenant-2', 9],
        [undefined, 99_999 + extra - 30],
      ]),
    );
    expect(stats.tenants).toHaveLength(4);

    const metrics = new RelayMetrics('test_', idleSources);
    metrics.setBacklog(stats);
    const families = parsePrometheusTextFormat(await metrics.registry.metrics());
    const tenantSeries = families.find((f) => f.name === 'test_tenant_pending_messages')?.metrics;
    expect(tenantSeries?.map((m) => m.labels?.tenant).sort()).toEqual([
      'other',
      'tenant-0',
      'tenant-1',
      'tenant-2',
    ]);
    // A later read with other leaders replaces the series: no label lingers.
    metrics.setBacklog({
      ...stats,
      tenants: [{ tenant: 'tenant-9', pending: 5, oldestSeconds: 1 }],
    });
    const again = parsePrometheusTextFormat(await metrics.registry.metrics());
    expect(
      again
        .find((f) => f.name === 'test_tenant_pending_messages')
        ?.metrics.map((m) => m.labels?.tenant)
        .sort(),
    ).toEqual(['other', 'tenant-9']);
  });

  it('fail, without taking the process down, when the database drops the connection mid-read', async () => {
    const { db } = fixture;
    const pool = createPool({
      url: db.url,
      max: 1,
      connectTimeoutMs: 5000,
      applicationName: 'outbox-relay backlog-read-test',
      onError: () => undefined,
    });
    // Hold the table so the read waits inside its transaction, then end its backend.
    const lock = await db.pool.connect();
    try {
      await lock.query('begin');
      await lock.query(`lock table "${db.schema}".messages in access exclusive mode`);
      const read = readBacklogStats(createOutboxStore(pool, db.schema), {
        topTenants: 3,
        pausedTenants: [],
        timeoutMs: 30_000,
      });
      const outcome = read.then(
        () => 'resolved',
        (error: Error) => error.message,
      );
      let pid: number | undefined;
      await waitFor(async () => {
        const { rows } = await db.pool.query<{ pid: number }>(
          `select pid from pg_stat_activity
           where application_name = 'outbox-relay backlog-read-test' and wait_event_type = 'Lock'`,
        );
        pid = rows[0]?.pid;
        return pid !== undefined;
      }, 'the backlog read to wait for the lock');
      await db.pool.query('select pg_terminate_backend($1)', [pid]);
      expect(await outcome).toMatch(/terminat/i);
    } finally {
      await lock.query('rollback');
      lock.release();
      await pool.end();
    }
  });

  it('report an empty outbox as zeros', async () => {
    const { db } = fixture;
    await db.pool.query(`truncate "${db.schema}".messages`);
    const stats = await readBacklogStats(db.store, {
      topTenants: 3,
      pausedTenants: [],
      timeoutMs: 10_000,
    });
    expect(stats).toEqual({
      pending: 0,
      oldestSeconds: 0,
      held: 0,
      dead: 0,
      tenants: [],
      activity: [],
      readAt: expect.any(Date),
    });
  });

  it('return the write-rate terms of the tenants that wrote or were claimed since a time, or of all', async () => {
    const { db } = fixture;
    const s = `"${db.schema}"`;
    await db.pool.query(`truncate ${s}.messages, ${s}.tenant_leases`);
    // writer: new rows; idle: only old rows; claimed: a lease that runs on;
    // swept-ish: a lease that ended long ago, no rows.
    await db.pool.query(
      `insert into ${s}.messages (tenant_id, exchange, payload, created_at)
       select 'writer', 'x', '\\x7b7d'::bytea, now() from generate_series(1, 3)
       union all
       select 'idle', 'x', '\\x7b7d'::bytea, now() - interval '1 day' from generate_series(1, 2)
       union all
       select 'claimed', 'x', '\\x7b7d'::bytea, now() - interval '1 day'`,
    );
    await db.pool.query(
      `insert into ${s}.tenant_leases (tenant_id, relay_id, leased_until, claimed) values
       ('claimed', gen_random_uuid(), now() + interval '1 minute', 40),
       ('ended', gen_random_uuid(), now() - interval '30 minutes', 7)`,
    );
    const read = (activeSince: Date | null) =>
      readBacklogStats(db.store, {
        topTenants: 1,
        pausedTenants: [],
        timeoutMs: 10_000,
        activeSince,
      });
    const all = await read(null);
    const byTenant = (stats: typeof all) =>
      Object.fromEntries(
        stats.activity.map((row) => [row.tenant, [row.pending, row.claimed]] as const),
      );
    expect(byTenant(all)).toEqual({
      writer: [3, 0],
      idle: [2, 0],
      claimed: [1, 40],
      ended: [0, 7],
    });
    expect(all.activity.find((row) => row.tenant === 'idle')?.oldestSeconds).toBeGreaterThan(
      80_000,
    );
    // The backlog rows are read as before, from the same pass.
    expect(all.pending).toBe(6);
    expect(all.tenants).toHaveLength(2);

    const recent = await read(new Date(all.readAt.getTime() - 60_000));
    expect(byTenant(recent)).toEqual({ writer: [3, 0], claimed: [1, 40] });
    expect(recent.readAt.getTime()).toBeGreaterThanOrEqual(all.readAt.getTime());
  });

  it("count none of a paused tenant's claims and at most a throttled tenant's rate of them", async () => {
    const { db } = fixture;
    const s = `"${db.schema}"`;
    await db.pool.query(`truncate ${s}.messages, ${s}.tenant_leases`);
    await db.pool.query(
      `insert into ${s}.tenant_leases (tenant_id, relay_id, leased_until, claimed)
       select t, gen_random_uuid(), now() + interval '1 minute', 0
       from unnest(array['open', 'throttled', 'paused']) t`,
    );
    const metrics = new RelayMetrics('test_', idleSources);
    const monitor = new BacklogMonitor(db.store, metrics, {
      intervalMs: 60_000,
      topTenants: 5,
      pausedTenants: () => ['paused'],
      decide: async (tenants) =>
        new Map(
          tenants.map((tenant) => [
            tenant,
            { paused: tenant === 'paused', ratePerSecond: tenant === 'throttled' ? 5 : undefined },
          ]),
        ),
      logger: silentLogger,
    });
    const rates = async () =>
      Object.fromEntries(
        (
          parsePrometheusTextFormat(await metrics.registry.metrics()).find(
            (f) => f.name === 'test_tenant_writes_per_second',
          )?.metrics ?? []
        ).map((m) => [m.labels?.tenant, Number(m.value)]),
      );
    await monitor.runOnce();
    expect(await rates()).toEqual({});
    // Claims took 10,000 rows of each. The paused and throttled tenants' were
    // mostly held back, to be claimed again: they count as writes only up to
    // what those tenants may publish (nothing, 5/s).
    await db.pool.query(`update ${s}.tenant_leases set claimed = 10000`);
    const started = Date.now();
    await monitor.runOnce();
    const seconds = (Date.now() - started) / 1000 + 1;
    const after = await rates();
    expect(after.open).toBeGreaterThan(10_000 / seconds);
    expect(after.throttled).toBeGreaterThan(0);
    expect(after.throttled).toBeLessThanOrEqual(5);
    expect(after.paused).toBeUndefined();
    expect(after.other).toBe(0);
  });

  it('export the fastest writers by tenant, the rest as one "other" series', async () => {
    const metrics = new RelayMetrics('test_', idleSources);
    const series = async () =>
      Object.fromEntries(
        (
          parsePrometheusTextFormat(await metrics.registry.metrics()).find(
            (f) => f.name === 'test_tenant_writes_per_second',
          )?.metrics ?? []
        ).map((m) => [m.labels?.tenant, Number(m.value)]),
      );
    expect(await series()).toEqual({});
    metrics.setWriteRates([
      { tenant: 'flood', perSecond: 900 },
      { tenant: 'acme', perSecond: 20 },
      { tenant: undefined, perSecond: 5 },
    ]);
    expect(await series()).toEqual({ flood: 900, acme: 20, other: 5 });
    metrics.setWriteRates([{ tenant: undefined, perSecond: 1 }]);
    expect(await series()).toEqual({ other: 1 });
  });
});
