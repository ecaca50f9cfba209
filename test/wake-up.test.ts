import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotifyListener } from '../src/db/notify-listener.js';
import { silentLogger } from '../src/log/logger.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { readSequence } from '../src/outbox/queries.js';
import { SequenceWatcher } from '../src/relay/sequence-watcher.js';
import { createTestBroker, type TestBroker } from './helpers/broker.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

let db: TestDatabase;
let broker: TestBroker;

beforeAll(async () => {
  db = await createTestDatabase('wake');
  broker = await createTestBroker('wake');
});

afterAll(async () => {
  await broker?.close();
  await db?.drop();
});

// The full poll is set to an hour in these tests, so anything published
// promptly was found through a wake-up hint, not the fallback poll.
const NO_POLL = 3_600_000;

describe('noticing new rows without a NOTIFY from writers', () => {
  it('publishes a row committed later without the fallback poll (sequence watcher)', async () => {
    const test = await createTestRelay(db, broker.url, { pollIntervalMs: NO_POLL });
    const watcher = new SequenceWatcher(
      () => readSequence(db.pool, db.statements),
      test.relay.wake,
      5,
      silentLogger,
    );
    try {
      watcher.start();
      test.relay.start();
      // Let the relay go idle on its (hour-long) poll.
      await waitFor(async () => (await db.counts()).pending === 0, 'an idle relay');
      await enqueue(db.pool, orderEvent(broker.exchange, 'acme', 1), { schema: db.schema });
      await waitFor(() => broker.received.length === 1, 'the first message', 10_000);

      // A transaction that inserts, then commits 300 ms later: the sequence moved
      // before commit, so only the watcher's follow-up rings can catch it.
      const client = await db.pool.connect();
      await client.query('begin');
      await enqueue(client, orderEvent(broker.exchange, 'acme', 2), { schema: db.schema });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await client.query('commit');
      client.release();
      await waitFor(() => broker.received.length === 2, 'the late-committed message', 10_000);
      expect(broker.received.map((m) => JSON.parse(String(m.body)).seq)).toEqual([1, 2]);
    } finally {
      watcher.stop();
      await test.close();
    }
  });

  it('wakes on an opt-in NOTIFY from the writer', async () => {
    broker.received.length = 0;
    const test = await createTestRelay(db, broker.url, { pollIntervalMs: NO_POLL });
    const listener = new NotifyListener({
      url: db.url,
      channel: db.statements.notifyChannel,
      connectTimeoutMs: 5000,
      onNotify: () => test.relay.wake.ring(),
      logger: silentLogger,
    });
    try {
      await listener.start();
      test.relay.start();
      await waitFor(async () => (await db.counts()).pending === 0, 'an idle relay');
      await enqueue(db.pool, orderEvent(broker.exchange, 'acme', 3), {
        schema: db.schema,
        notify: true,
      });
      await waitFor(() => broker.received.length === 1, 'the notified message', 10_000);
    } finally {
      await listener.stop();
      await test.close();
    }
  });
});
