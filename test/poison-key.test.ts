import { describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('poison_key');

describe('a poisoned ordering key', () => {
  it("does not hold back its tenant's other keys: they are all published while it retries", async () => {
    const { db, broker } = fixture;
    // Tenant acme's key "poisoned": 5,000 messages for an exchange that does
    // not exist, enqueued first, so they fill every claim's window of acme.
    await enqueue(
      db.pool,
      Array.from({ length: 5000 }, (_, i) =>
        orderEvent('no-such-exchange', 'acme', i, { orderingKey: 'poisoned' }),
      ),
      { schema: db.schema },
    );
    // Then five other keys of acme, 200 messages each, for the test's exchange.
    const inserted = await enqueue(
      db.pool,
      Array.from({ length: 1000 }, (_, i) =>
        orderEvent(broker.exchange, 'acme', Math.floor(i / 5), { orderingKey: `key-${i % 5}` }),
      ),
      { schema: db.schema },
    );
    const expected = new Set(inserted.map((row) => row.messageId));

    const { relay, close } = await createTestRelay(db, broker.url);
    try {
      relay.start();
      await waitFor(
        () => new Set(broker.received.map((m) => m.messageId)).size === expected.size,
        'the other keys to be published',
        60_000,
      );
      expect(new Set(broker.received.map((m) => m.messageId))).toEqual(expected);
      // A batch's rows are deleted once the broker has confirmed all of it,
      // which can come after the consumer has the messages.
      await waitFor(
        async () => (await db.counts()).pending === 5000,
        'the published rows to be settled',
        10_000,
      );
      // Meanwhile the poisoned key only failed and backed off: its head is
      // still retrying, far from dead, and none of its rows went anywhere.
      const { rows } = await db.pool.query(
        `select count(*)::int as pending,
           count(*) filter (where dead_at is not null)::int as dead,
           (select attempts from "${db.schema}".messages where ordering_key = 'poisoned' order by id limit 1) as head_attempts,
           bool_or(last_error like '%no-such-exchange%') as failed
         from "${db.schema}".messages where ordering_key = 'poisoned'`,
      );
      expect(rows[0]).toMatchObject({ pending: 5000, dead: 0, failed: true });
      expect(rows[0].head_attempts).toBeGreaterThanOrEqual(1);
      expect(rows[0].head_attempts).toBeLessThan(10);
    } finally {
      await close();
    }
  });
});
