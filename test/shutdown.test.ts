/**
 * Stopping a relay, as ops do it: SIGTERM in the middle of a broker
 * reconnect, and `run --once` followed by a relay that takes the same tenants.
 */
import { describe, expect, it } from 'vitest';
import { loggedEntry, runCli, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('shutdown', { resetEachTest: true });

describe('shutdown', () => {
  it('a SIGTERM while the broker connection is being re-established exits promptly, even if that connect then succeeds', async () => {
    const proxy = await proxyFor(fixture.broker.url);
    const relay = startCli(['run'], cliEnv(fixture, { AMQP_URL: proxy.url, LOG_LEVEL: 'info' }));
    try {
      await waitFor(() => loggedEntry(relay.output(), 'relay started') !== undefined, 'start');
      // The next connect hangs: TCP accepted, nothing forwarded.
      proxy.hold();
      proxy.reset();
      await waitFor(() => proxy.holding() > 0, 'the relay to be reconnecting');
      const signalled = Date.now();
      relay.child.kill('SIGTERM');
      await waitFor(
        () => loggedEntry(relay.output(), 'relay stopped') !== undefined,
        'relay stopped',
      );
      // The connect started before the signal now completes.
      proxy.accept();
      expect(await relay.exited).toBe(0);
      // Well inside OUTBOX_SHUTDOWN_TIMEOUT (default 30 s) and the forced exit after it.
      expect(Date.now() - signalled).toBeLessThan(10_000);
    } finally {
      relay.child.kill('SIGKILL');
      await proxy.close();
    }
  });

  it('run --once gives its tenant leases back, so a relay started next publishes those tenants at once', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex', 'initech'], 5);
    const once = await runCli(['run', '--once'], cliEnv(fixture));
    expect(once.code).toBe(0);
    const { rows } = await db.pool.query(
      `select count(*)::int as leases from "${db.schema}".tenant_leases where leased_until > now()`,
    );
    expect(rows[0].leases).toBe(0);
    // New rows of the same tenants: a second run (default 60 s lease) takes them now.
    const later = await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 3);
    const second = await runCli(['run', '--once'], cliEnv(fixture));
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ published: 6 });
    for (const ids of later.values()) {
      for (const id of ids) expect(broker.distinctIds().has(id)).toBe(true);
    }
  });
});
