/**
 * What an idle relay does, on the real database and broker: the sequence
 * watcher backs off to one read per idle interval, a relay draining full
 * claims does not read it at all, and the first event after a silence is
 * still published at once (the full poll is an hour here, so only the
 * watcher can have found it).
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { readSequence } from '../src/outbox/backlog-stats.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { IDLE_INTERVAL_MS, SequenceWatcher } from '../src/relay/sequence-watcher.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents, orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('idle', { resetEachTest: true });
const NO_POLL = 3_600_000;

async function relayWithWatcher(options: { batchSize?: number } = {}) {
  const test = await createTestRelay(fixture.db, fixture.broker.url, {
    pollIntervalMs: NO_POLL,
    ...options,
  });
  const watcher = new SequenceWatcher(
    () => readSequence(fixture.db.store),
    test.relay.wake,
    2,
    silentLogger,
  );
  return {
    test,
    watcher,
    async close() {
      watcher.stop();
      await test.close();
    },
  };
}

describe('an idle relay', () => {
  it('reads the sequence about once per idle interval, and publishes the first event after the silence at once', async () => {
    const { test, watcher, close } = await relayWithWatcher();
    try {
      watcher.start();
      test.relay.start();
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
        schema: fixture.db.schema,
      });
      await waitFor(() => fixture.broker.received.length === 1, 'the first message');
      await waitFor(() => watcher.idle(), 'the watcher to back off and end its follow-up rings');

      // Ten reads take about nine idle intervals: no faster than that.
      const reads = watcher.readCount();
      const started = Date.now();
      await waitFor(() => watcher.readCount() >= reads + 10, 'ten more reads');
      expect(Date.now() - started).toBeGreaterThanOrEqual(9 * IDLE_INTERVAL_MS - 20);

      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 2), {
        schema: fixture.db.schema,
      });
      const committed = Date.now();
      await waitFor(() => fixture.broker.received.length === 2, 'the event after the silence');
      // One idle interval at most, plus a claim and a publish (the bench measures it:
      // docs/benchmarks.md); the bound here leaves room for a loaded test machine.
      expect(Date.now() - committed).toBeLessThan(IDLE_INTERVAL_MS + 900);
    } finally {
      await close();
    }
  });

  it('does not read the sequence while its claims come back full', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 6000);
    const { test, watcher, close } = await relayWithWatcher({ batchSize: 100 });
    try {
      watcher.start();
      test.relay.start();
      await waitFor(() => broker.received.length >= 3000, 'half the backlog');
      // The relay never waited on its wake signal since it started: no read.
      expect(watcher.readCount()).toBe(0);
      await waitFor(() => broker.received.length >= 6000, 'the whole backlog');
      // Caught up, it waits, and the watcher reads again.
      await waitFor(() => watcher.readCount() > 1, 'the watcher to read again');
    } finally {
      await close();
    }
  });
});
