/**
 * Failover with the default settings (a 60 s OUTBOX_LEASE): a relay's tenant
 * leases follow its liveness lock in PostgreSQL, so a killed relay's tenants
 * go on within seconds, while a relay that is only frozen keeps them until
 * its lease ends and does not take them back from the relay that took over.
 */
import { describe, expect, it } from 'vitest';
import { type CliProcess, loggedEntry, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('failover', { resetEachTest: true });
const TENANTS = Array.from({ length: 12 }, (_, i) => `tenant-${i}`);
// Events per tenant before the kill. A killed relay's tenants stay leased to
// it, drained or not, so a backlog of a few hundred rows left behind is enough
// to show the takeover; the markers wait behind that backlog, so a bigger one
// would make the 5 s bound measure drain speed on a loaded machine instead.
const EVENTS_PER_TENANT = 300;

/** Starts `outbox-relay run` with default settings; resolves its relay id once it runs. */
async function startRelay(): Promise<{ cli: CliProcess; relayId: string }> {
  const cli = startCli(['run'], cliEnv(fixture, { LOG_LEVEL: 'info' }));
  await waitFor(() => loggedEntry(cli.output(), 'relay started') !== undefined, 'relay start');
  const relayId = String(loggedEntry(cli.output(), 'relay started')?.relayId);
  return { cli, relayId };
}

/** Tenants whose live lease `relayId` holds. */
async function leasedTo(relayId: string): Promise<string[]> {
  const { rows } = await fixture.db.pool.query(
    `select tenant_id from "${fixture.db.schema}".tenant_leases
     where relay_id = $1 and leased_until > now() order by tenant_id`,
    [relayId],
  );
  return rows.map((row) => row.tenant_id as string);
}

/** Enqueues one marker message per tenant of `tenants`; returns their message ids. */
async function markers(tenants: readonly string[]): Promise<string[]> {
  const ids = await enqueueEvents(
    fixture.db.pool,
    fixture.db.schema,
    fixture.broker.exchange,
    tenants,
    1,
  );
  return [...ids.values()].flat();
}

function allReceived(ids: readonly string[]): boolean {
  const received = fixture.broker.distinctIds();
  return ids.every((id) => received.has(id));
}

describe('failover', () => {
  it('SIGKILL, then a restart: the killed relay’s tenants publish again within 5 s', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, TENANTS, EVENTS_PER_TENANT);
    const first = await startRelay();
    try {
      await waitFor(
        () => broker.received.length >= (TENANTS.length * EVENTS_PER_TENANT) / 3,
        'the first relay to publish',
      );
      expect((await leasedTo(first.relayId)).length).toBeGreaterThan(0);
      first.cli.child.kill('SIGKILL');
      await first.cli.exited;
      const killedAt = Date.now();
      const second = await startRelay();
      try {
        const ids = await markers(TENANTS);
        await waitFor(() => allReceived(ids), 'a marker of every tenant', 5000);
        expect(Date.now() - killedAt).toBeLessThan(5000);
        await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
        expect(broker.distinctIds().size).toBe(TENANTS.length * (EVENTS_PER_TENANT + 1));
      } finally {
        second.cli.child.kill('SIGTERM');
        await second.cli.exited;
      }
    } finally {
      first.cli.child.kill('SIGKILL');
    }
  });

  it('SIGKILL with a second relay running: it takes the killed relay’s tenants within 5 s', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, TENANTS, EVENTS_PER_TENANT);
    const a = await startRelay();
    const b = await startRelay();
    try {
      await waitFor(async () => (await leasedTo(a.relayId)).length > 0, 'relay A to hold tenants');
      const held = await leasedTo(a.relayId);
      a.cli.child.kill('SIGKILL');
      await a.cli.exited;
      const killedAt = Date.now();
      const ids = await markers(held);
      await waitFor(() => allReceived(ids), 'a marker of each of the killed relay’s tenants', 5000);
      expect(Date.now() - killedAt).toBeLessThan(5000);
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
    } finally {
      a.cli.child.kill('SIGKILL');
      b.cli.child.kill('SIGTERM');
      await b.cli.exited;
    }
  });

  it('SIGSTOP: the frozen relay keeps its tenants until its lease ends, and after SIGCONT does not take them back', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, TENANTS, 200);
    const a = await startRelay();
    let b: { cli: CliProcess; relayId: string } | undefined;
    try {
      await waitFor(async () => (await leasedTo(a.relayId)).length > 0, 'relay A to hold tenants');
      await waitFor(async () => (await db.counts()).pending === 0, 'the first rows');
      a.cli.child.kill('SIGSTOP');
      b = await startRelay();
      // A's tenants, as leased when it froze (its leases outlive the freeze until they end).
      const held = await leasedTo(a.relayId);
      expect(held.length).toBeGreaterThan(0);
      const ids = await markers(held);
      // While A's leases last, B must leave A's tenants alone: the markers stay pending.
      await waitFor(
        async () => {
          const leases = await leasedTo(a.relayId);
          if (leases.length > 0) expect(allReceived(ids)).toBe(false);
          return leases.length === 0;
        },
        'relay A’s leases to end',
        90_000,
      );
      await waitFor(() => allReceived(ids), 'relay B to publish A’s tenants', 10_000);
      const takenBy = b.relayId;
      expect((await leasedTo(takenBy)).length).toBeGreaterThan(0);
      a.cli.child.kill('SIGCONT');
      // A runs again and keeps claiming; B keeps A's former tenants while it lives.
      const more = await markers(held);
      await waitFor(() => allReceived(more), 'the second markers');
      expect(await leasedTo(a.relayId)).toEqual([]);
      expect(loggedEntry(a.cli.output(), 'relay stopped')).toBeUndefined();
    } finally {
      a.cli.child.kill('SIGCONT');
      a.cli.child.kill('SIGTERM');
      b?.cli.child.kill('SIGTERM');
      await a.cli.exited;
      await b?.cli.exited;
    }
  });
});
