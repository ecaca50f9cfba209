import { describe, expect, it } from 'vitest';
import { NotifyListener } from '../src/db/notify-listener.js';
import { silentLogger } from '../src/log/logger.js';
import { readSequence } from '../src/outbox/backlog-stats.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { listenStatement } from '../src/outbox/outbox-store.js';
import { SequenceWatcher } from '../src/relay/sequence-watcher.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('wake');

// The full poll is set to an hour in these tests, so anything published
// promptly was found through a wake-up hint, not the fallback poll.
const NO_POLL = 3_600_000;

describe('noticing new rows without a NOTIFY from writers', () => {
  it('publishes a row committed later without the fallback poll (sequence watcher)', async () => {
    const test = await createTestRelay(fixture.db, fixture.broker.url, { pollIntervalMs: NO_POLL });
    const watcher = new SequenceWatcher(
      () => readSequence(fixture.db.store),
      test.relay.wake,
      5,
      silentLogger,
    );
    try {
      watcher.start();
      test.relay.start();
      // Let the relay go idle on its (hour-long) poll.
      await waitFor(async () => (await fixture.db.counts()).pending === 0, 'an idle relay');
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
        schema: fixture.db.schema,
      });
      await waitFor(() => fixture.broker.received.length === 1, 'the first message', 10_000);

      // A transaction that inserts, then commits 300 ms later: the sequence moved
      // before commit, so only the watcher's follow-up rings can catch it.
      const client = await fixture.db.pool.connect();
      await client.query('begin');
      await enqueue(client, orderEvent(fixture.broker.exchange, 'acme', 2), {
        schema: fixture.db.schema,
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await client.query('commit');
      client.release();
      await waitFor(
        () => fixture.broker.received.length === 2,
        'the late-committed message',
        10_000,
      );
      expect(fixture.broker.received.map((m) => JSON.parse(String(m.body)).seq)).toEqual([1, 2]);
    } finally {
      watcher.stop();
      await test.close();
    }
  });

  it('wakes on an opt-in NOTIFY from the writer', async () => {
    fixture.broker.received.length = 0;
    const test = await createTestRelay(fixture.db, fixture.broker.url, { pollIntervalMs: NO_POLL });
    const listener = new NotifyListener({
      url: fixture.db.url,
      listen: listenStatement(fixture.db.store),
      connectTimeoutMs: 5000,
      onNotify: () => test.relay.wake.ring(),
      logger: silentLogger,
    });
    try {
      await listener.start();
      test.relay.start();
      await waitFor(async () => (await fixture.db.counts()).pending === 0, 'an idle relay');
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 3), {
        schema: fixture.db.schema,
        notify: true,
      });
      await waitFor(() => fixture.broker.received.length === 1, 'the notified message', 10_000);
    } finally {
      await listener.stop();
      await test.close();
    }
  });
});
