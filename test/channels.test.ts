import { describe, expect, it } from 'vitest';
import { connectionName } from '../src/broker/amqp-publisher.js';
import { channelsPerConnection } from './helpers/broker-admin.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('channels');

describe('bounded broker resources', () => {
  it('uses no more channels than configured while and after publishing 100,000 messages', async () => {
    const tenants = Array.from({ length: 20 }, (_, i) => `tenant-${i}`);
    await enqueueEvents(fixture.db.pool, fixture.db.schema, fixture.broker.exchange, tenants, 5000);
    const test = await createTestRelay(fixture.db, fixture.broker.url, { channels: 2 });
    const name = connectionName(test.relayId);
    let most = 0;
    let samples = 0;
    try {
      test.relay.start();
      // Ask the broker repeatedly while the relay publishes.
      const deadline = Date.now() + 90_000;
      while (fixture.broker.received.length < 100_000) {
        if (Date.now() > deadline)
          throw new Error(`only ${fixture.broker.received.length} of 100,000 arrived`);
        const channels = (await channelsPerConnection(fixture.broker.url)).get(name);
        if (channels !== undefined) {
          samples += 1;
          most = Math.max(most, channels);
        }
      }
      await waitFor(async () => (await fixture.db.counts()).pending === 0, 'the outbox to empty');
      const after = (await channelsPerConnection(fixture.broker.url)).get(name);
      expect(samples).toBeGreaterThan(0);
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
      expect(after).toBeLessThanOrEqual(2);
      expect(new Set(fixture.broker.received.map((m) => m.messageId)).size).toBe(100_000);
    } finally {
      await test.close();
    }
  });
});
