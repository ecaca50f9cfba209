import { describe, expect, it } from 'vitest';
import { loggedEntry, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('crash', { resetEachTest: true });

function env(): Record<string, string> {
  return cliEnv(fixture, {
    // A short lease so a restarted relay takes over the killed one's tenants quickly.
    OUTBOX_LEASE: '2s',
    OUTBOX_BATCH_SIZE: '200',
    LOG_LEVEL: 'error',
  });
}

describe('crashes and lost database connections', () => {
  it('kill -9 three times mid-stream over 50,000 messages: every message arrives, duplicates bounded', async () => {
    const { db, broker } = fixture;
    const tenants = Array.from({ length: 20 }, (_, i) => `tenant-${i}`);
    const ids = await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 2500);
    const expected = new Set([...ids.values()].flat());
    let kills = 0;
    for (const at of [8000, 20_000, 32_000]) {
      const relay = startCli(['run'], env());
      await waitFor(() => broker.received.length >= at, `${at} messages`, 60_000);
      relay.child.kill('SIGKILL');
      expect(await relay.exited).toBeNull();
      kills += 1;
    }
    const last = startCli(['run'], env());
    try {
      await waitFor(() => broker.distinctIds().size === 50_000, 'every message', 90_000);
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
    } finally {
      last.child.kill('SIGTERM');
      expect(await last.exited).toBe(0);
    }
    expect(kills).toBe(3);
    // Every id that arrived is one we enqueued, and every one arrived.
    const arrived = broker.distinctIds();
    expect([...arrived].every((id) => expected.has(id))).toBe(true);
    expect(arrived.size).toBe(expected.size);
    // Duplicates are at most what each killed relay had in flight
    // (OUTBOX_BATCHES_IN_FLIGHT × OUTBOX_BATCH_SIZE, plus the confirm window).
    const duplicates = broker.received.length - arrived.size;
    expect(duplicates).toBeLessThanOrEqual(3 * (3 * 200 + 500));
  });

  it('survives its database connections being terminated mid-stream', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 10_000);
    const relay = startCli(['run'], { ...env(), OUTBOX_LEASE: '60s' });
    try {
      await waitFor(() => broker.received.length >= 2000, 'the first messages', 60_000);
      // Kill this relay's backends, pool and LISTEN alike: the ones whose last
      // statement names this test's schema (other test files run relays too).
      const { rows } = await db.pool.query(
        `select count(pg_terminate_backend(pid))::int as killed from pg_stat_activity
         where application_name like 'outbox-relay%' and query like '%' || $1 || '%' and pid <> pg_backend_pid()`,
        [db.schema],
      );
      expect(rows[0].killed).toBeGreaterThan(0);
      await waitFor(
        () => broker.distinctIds().size === 20_000,
        'every message after the connections were cut',
        60_000,
      ).catch((error: Error) => {
        throw new Error(`${error.message}; relay output:\n${relay.output().slice(-3000)}`);
      });
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      expect(relay.child.exitCode).toBeNull();
    } finally {
      relay.child.kill('SIGTERM');
    }
    expect(await relay.exited).toBe(0);
  });

  it('three relays, one killed mid-stream: the others take over its tenants; nothing lost, first arrivals in order', async () => {
    const { db, broker } = fixture;
    const tenants = Array.from({ length: 30 }, (_, i) => `tenant-${i}`);
    const ids = await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 1000);
    const relays = [0, 1, 2].map(() => startCli(['run'], { ...env(), LOG_LEVEL: 'info' }));
    // The relay id from the JSON 'relay started' log line.
    const idOf = (output: string) => loggedEntry(output, 'relay started')?.relayId;
    let victim: (typeof relays)[number] | undefined;
    try {
      await waitFor(
        () => relays.every((r) => idOf(r.output()) !== undefined),
        'the relays to start',
      );
      await waitFor(() => broker.received.length >= 6000, 'the first 6,000 messages', 60_000);
      // Kill the relay that holds the most tenants right now.
      const { rows } = await db.pool.query(
        `select relay_id::text, count(*)::int as tenants from "${db.schema}".tenant_leases
         where leased_until > now() group by 1 order by 2 desc limit 1`,
      );
      victim = relays.find((r) => idOf(r.output()) === rows[0]?.relay_id);
      expect(rows[0]?.tenants).toBeGreaterThan(0);
      expect(victim).toBeDefined();
      victim?.child.kill('SIGKILL');
      expect(await victim?.exited).toBeNull();
      await waitFor(
        () => broker.distinctIds().size === 30_000,
        'every message after the kill',
        90_000,
      );
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
    } finally {
      for (const relay of relays) if (relay !== victim) relay.child.kill('SIGTERM');
    }
    for (const relay of relays) if (relay !== victim) expect(await relay.exited).toBe(0);
    // Per tenant, the first arrival of each message follows enqueue order; only the
    // killed relay's unconfirmed messages may come a second time.
    for (const tenant of tenants) {
      const seen = new Set<string>();
      const firsts: string[] = [];
      for (const m of broker.received) {
        if (m.tenantId !== tenant || seen.has(m.messageId)) continue;
        seen.add(m.messageId);
        firsts.push(m.messageId);
      }
      expect(firsts).toEqual(ids.get(tenant));
    }
  });
});
