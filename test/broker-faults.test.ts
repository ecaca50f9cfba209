import { describe, expect, it } from 'vitest';
import { useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('brokerfaults', { resetEachTest: true });

describe('broker connection faults (through a TCP proxy)', () => {
  it('publishes everything after the connection is reset mid-stream', async () => {
    const { db, broker } = fixture;
    const proxy = await proxyFor(broker.url);
    const tenants = Array.from({ length: 10 }, (_, i) => `tenant-${i}`);
    await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 2000);
    const test = await createTestRelay(db, proxy.url, {
      batchSize: 200,
    });
    try {
      test.relay.start();
      await waitFor(() => broker.received.length >= 3000, 'the first messages');
      expect(broker.distinctIds().size).toBeLessThan(20_000);
      proxy.reset();
      await waitFor(
        () => broker.distinctIds().size === 20_000,
        'every message after the reset',
        60_000,
      );
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      // At least once: duplicates may only be messages that were in flight at the reset.
      expect(broker.received.length - 20_000).toBeLessThanOrEqual(2 * 500 + 3 * 200);
      // The relay had to connect again: the reset hit it mid-stream.
      expect(proxy.accepted()).toBeGreaterThanOrEqual(2);
    } finally {
      await test.close();
      await proxy.close();
    }
  });

  it('notices a silently dead link (blackhole) and publishes everything after reconnecting', async () => {
    const { db, broker } = fixture;
    const proxy = await proxyFor(broker.url);
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 5000);
    // Short heartbeat and confirm timeout so the test is quick; the defaults notice within 30 s.
    const test = await createTestRelay(db, proxy.url, {
      batchSize: 200,
      heartbeatMs: 1000,
      confirmTimeoutMs: 2000,
    });
    try {
      test.relay.start();
      await waitFor(() => broker.received.length >= 1000, 'the first messages');
      expect(broker.distinctIds().size).toBeLessThan(10_000);
      proxy.blackhole();
      await waitFor(
        () => broker.distinctIds().size === 10_000,
        'every message after the blackhole',
        60_000,
      );
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      expect(test.publisher.isReady()).toBe(true);
      expect(proxy.accepted()).toBeGreaterThanOrEqual(2);
    } finally {
      await test.close();
      await proxy.close();
    }
  });
});
