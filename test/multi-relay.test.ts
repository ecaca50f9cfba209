import { describe, expect, it } from 'vitest';
import { useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay, type TestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('multi', { resetEachTest: true });

/** Checks every expected id arrived exactly once and each tenant's messages arrived in enqueue order. */
function checkExactlyOnceInOrder(expected: Map<string, string[]>): void {
  const seen = new Map<string, number>();
  for (const m of fixture.broker.received) seen.set(m.messageId, (seen.get(m.messageId) ?? 0) + 1);
  const duplicates = [...seen.entries()].filter(([, n]) => n > 1);
  expect(duplicates).toEqual([]);
  for (const [tenant, ids] of expected) {
    const arrived = fixture.broker.received
      .filter((m) => m.tenantId === tenant)
      .map((m) => m.messageId);
    expect(arrived.length).toBe(ids.length);
    expect(arrived).toEqual(ids);
  }
}

describe('several relays on one database', () => {
  it('three relays publish 30,000 messages of 10 tenants exactly once, each tenant in order', async () => {
    const tenants = Array.from({ length: 10 }, (_, i) => `tenant-${i}`);
    const expected = await enqueueEvents(
      fixture.db.pool,
      fixture.db.schema,
      fixture.broker.exchange,
      tenants,
      3000,
    );
    const relays: TestRelay[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        // Small batches so the relays really take turns on the same tenants.
        relays.push(
          await createTestRelay(fixture.db, fixture.broker.url, {
            batchSize: 100,
            batchesInFlight: 3,
          }),
        );
      }
      for (const r of relays) r.relay.start();
      await waitFor(() => fixture.broker.received.length >= 30_000, '30,000 messages', 90_000);
      await waitFor(async () => (await fixture.db.counts()).pending === 0, 'the outbox to empty');
      // Which relay publishes what depends on timing (a relay that holds a key
      // in flight keeps it); together they published each row once.
      expect(relays.reduce((sum, r) => sum + r.relay.stats().published, 0)).toBe(30_000);
      checkExactlyOnceInOrder(expected);
    } finally {
      for (const r of relays) await r.close();
    }
  });

  it('keeps per-key order for custom ordering keys while relays share one tenant', async () => {
    const { enqueue } = await import('../src/outbox/enqueue.js');
    const messages = Array.from({ length: 3000 }, (_, i) => ({
      tenantId: 'big',
      exchange: fixture.broker.exchange,
      routingKey: 'orders',
      orderingKey: `order-${i % 7}`,
      payload: { key: `order-${i % 7}`, seq: i },
    }));
    await enqueue(fixture.db.pool, messages, { schema: fixture.db.schema });
    const relays: TestRelay[] = [];
    try {
      for (let i = 0; i < 3; i++)
        relays.push(await createTestRelay(fixture.db, fixture.broker.url, { batchSize: 50 }));
      for (const r of relays) r.relay.start();
      await waitFor(() => fixture.broker.received.length >= 3000, '3,000 messages', 60_000);
      const lastSeq = new Map<string, number>();
      for (const m of fixture.broker.received) {
        const { key, seq } = JSON.parse(String(m.body)) as { key: string; seq: number };
        expect(seq).toBeGreaterThan(lastSeq.get(key) ?? -1);
        lastSeq.set(key, seq);
      }
      expect(new Set(fixture.broker.received.map((m) => m.messageId)).size).toBe(3000);
    } finally {
      for (const r of relays) await r.close();
    }
  });
});
