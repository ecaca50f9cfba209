import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionName } from '../src/broker/amqp-publisher.js';
import { createTestBroker, type TestBroker } from './helpers/broker.js';
import { channelsPerConnection } from './helpers/broker-admin.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

let db: TestDatabase;
let broker: TestBroker;

beforeAll(async () => {
  db = await createTestDatabase('channels');
  broker = await createTestBroker('channels');
});

afterAll(async () => {
  await broker?.close();
  await db?.drop();
});

describe('bounded broker resources', () => {
  it('uses no more channels than configured while and after publishing 50,000 messages', async () => {
    const tenants = Array.from({ length: 20 }, (_, i) => `tenant-${i}`);
    await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 2500);
    const test = await createTestRelay(db, broker.url, { channels: 2 });
    const name = connectionName(test.relayId);
    let most = 0;
    let samples = 0;
    try {
      test.relay.start();
      // Ask the broker repeatedly while the relay publishes.
      while (broker.received.length < 50_000) {
        const channels = (await channelsPerConnection(broker.url)).get(name);
        if (channels !== undefined) {
          samples += 1;
          most = Math.max(most, channels);
        }
        if (broker.received.length < 50_000) await waitFor(() => true, 'nothing');
      }
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      const after = (await channelsPerConnection(broker.url)).get(name);
      expect(samples).toBeGreaterThan(0);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
      expect(after).toBeLessThanOrEqual(2);
      expect(new Set(broker.received.map((m) => m.messageId)).size).toBe(50_000);
    } finally {
      await test.close();
    }
  });
});
