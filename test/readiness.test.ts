/**
 * Each readiness check against real components: a database that does not
 * answer, a flag source that never initializes (failing open is ready,
 * failing closed is not), and a relay shutting down.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmqpPublisher, connectionName } from '../src/broker/amqp-publisher.js';
import { silentLogger } from '../src/log/logger.js';
import type { TenantGate } from '../src/relay/tenant-gate.js';
import { ReadinessProbe } from '../src/runtime/readiness.js';
import { allowAllTenants } from '../src/tenants/allow-all-gate.js';
import { createTestDatabase } from './helpers/database.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { createTestRelay } from './helpers/relay.js';
import { unavailableFlagsGate } from './helpers/unavailable-flags.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('readiness');
let publisher: AmqpPublisher;

beforeAll(async () => {
  publisher = await AmqpPublisher.connect({
    url: fixture.broker.url,
    channels: 1,
    maxInFlight: 10,
    heartbeatMs: 10_000,
    confirmTimeoutMs: 15_000,
    connectTimeoutMs: 5000,
    connectionName: connectionName(),
    logger: silentLogger,
  });
});
afterAll(async () => {
  await publisher?.close(0);
});

describe('readiness', () => {
  it('is ready with the database, the broker and the flags all fine', async () => {
    const probe = new ReadinessProbe({
      pool: fixture.db.pool,
      publisher,
      gate: allowAllTenants(),
      timeoutMs: 2000,
    });
    const report = await probe.check();
    expect(report.ready).toBe(true);
    expect(report.checks.database).toEqual({ ok: true, detail: 'connected' });
    expect(report.checks.broker.ok).toBe(true);
    expect(probe.last()).toEqual({ database: true, broker: true, flags: true, claims: true });
  });

  it('is not ready while the database does not answer, and says why', async () => {
    // Nothing listens on port 1: connecting fails at once.
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
    pool.on('error', () => undefined);
    try {
      const probe = new ReadinessProbe({
        pool,
        publisher,
        gate: allowAllTenants(),
        timeoutMs: 2000,
      });
      const report = await probe.check();
      expect(report.ready).toBe(false);
      expect(report.checks.database.ok).toBe(false);
      expect(report.checks.database.detail).toMatch(/ECONNREFUSED/);
      expect(report.checks.broker.ok).toBe(true);
    } finally {
      await pool.end();
    }
  });

  it('is ready while the flags fail open, not while they fail closed', async () => {
    const [open, closed] = await Promise.all([
      unavailableFlagsGate(false),
      unavailableFlagsGate(true),
    ]);
    try {
      const probe = (gate: TenantGate) =>
        new ReadinessProbe({ pool: fixture.db.pool, publisher, gate, timeoutMs: 2000 }).check();
      const whenOpen = await probe(open);
      expect(whenOpen.ready).toBe(true);
      expect(whenOpen.checks.flags.detail).toMatch(/failing open/);
      const whenClosed = await probe(closed);
      expect(whenClosed.ready).toBe(false);
      expect(whenClosed.checks.flags).toMatchObject({ ok: false });
      expect(whenClosed.checks.flags.detail).toMatch(/failing closed/);
    } finally {
      await open.close();
      await closed.close();
    }
  });

  it('is not ready once the relay is stopping, in the report and in the gauge values', async () => {
    const probe = new ReadinessProbe({
      pool: fixture.db.pool,
      publisher,
      gate: allowAllTenants(),
      timeoutMs: 2000,
    });
    expect((await probe.check()).ready).toBe(true);
    probe.markStopping();
    expect((await probe.check()).ready).toBe(false);
    expect(probe.last()).toEqual({
      database: false,
      broker: false,
      flags: false,
      claims: false,
    });
  });

  it('is not ready while every claim fails though the database answers, and ready once claims work again', async () => {
    // Its own schema: the test takes the outbox table away.
    const db = await createTestDatabase('readiness_claims');
    const running = await createTestRelay(db, fixture.broker.url, { pollIntervalMs: 20 });
    try {
      const probe = new ReadinessProbe({
        pool: db.pool,
        publisher: running.publisher,
        gate: allowAllTenants(),
        claimFailing: () => running.relay.claimFailing(),
        timeoutMs: 2000,
      });
      running.relay.start();
      expect((await probe.check()).ready).toBe(true);
      await db.pool.query(`alter table "${db.schema}".messages rename to messages_away`);
      let down = await probe.check();
      await waitFor(async () => {
        down = await probe.check();
        return !down.ready;
      }, 'readiness to report the failing claims');
      expect(down.checks.database.ok).toBe(true);
      expect(down.checks.claims.ok).toBe(false);
      expect(down.checks.claims.detail).toMatch(/claims failed in a row since .*does not exist/);
      await db.pool.query(`alter table "${db.schema}".messages_away rename to messages`);
      let up = await probe.check();
      await waitFor(async () => {
        up = await probe.check();
        return up.ready;
      }, 'readiness once claims work again');
      expect(up.checks.claims).toEqual({ ok: true, detail: 'claiming' });
    } finally {
      await running.close();
      await db.drop();
    }
  });
});
