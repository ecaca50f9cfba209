import { describe, expect, it } from 'vitest';
import { ReadinessProbe } from '../../src/runtime/readiness.js';
import { allowAllTenants } from '../../src/tenants/allow-all-gate.js';
import { useOutboxFixture } from '../helpers/fixture.js';
import { enqueueEvents } from '../helpers/messages.js';
import { createTestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';
import {
  assertOwnedBroker,
  type BrokerStatus,
  brokerStatus,
  rabbitmqctl,
} from './owned-servers.js';

const fixture = useOutboxFixture('alarm');

type Watermark = BrokerStatus['vm_memory_high_watermark_setting'];

const readWatermark = (): Watermark => brokerStatus().vm_memory_high_watermark_setting;

/** Sets the local node's memory high watermark, a fraction of RAM or an absolute amount. */
function setWatermark(watermark: Watermark): void {
  if ('relative' in watermark) {
    rabbitmqctl('set_vm_memory_high_watermark', String(watermark.relative));
  } else {
    rabbitmqctl('set_vm_memory_high_watermark', 'absolute', String(watermark.absolute));
  }
}

/** Puts the watermark back; if that fails, says how to do it by hand. */
function restoreWatermark(original: Watermark): void {
  try {
    setWatermark(original);
  } catch (error) {
    const value =
      'relative' in original ? String(original.relative) : `absolute ${original.absolute}`;
    throw new Error(
      `the memory alarm test could not restore RabbitMQ's memory high watermark; run: rabbitmqctl set_vm_memory_high_watermark ${value}`,
      { cause: error },
    );
  }
}

describe('a broker memory alarm', () => {
  it('stops the relay publishing while writes keep committing, and loses nothing once it clears', async () => {
    const { db, broker } = fixture;
    // Before anything else: the alarm must go off on the broker the tests use, on this machine.
    assertOwnedBroker(broker.url);
    const tenants = ['acme', 'globex', 'initech'];
    await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 1000);
    const original = readWatermark();
    const test = await createTestRelay(db, broker.url, { batchSize: 200 });
    try {
      try {
        test.relay.start();
        await waitFor(() => broker.distinctIds().size === 3000, 'the first 3,000 messages');

        setWatermark({ relative: 0.0001 });
        // Writes never wait on the broker: 6,000 more events commit during the alarm.
        await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 2000);
        // The first publish during the alarm gets the connection blocked; the
        // relay then stops claiming, and its unconfirmed batch waits (no timeout).
        await waitFor(
          () => !test.publisher.isReady(),
          'connection.blocked from the broker',
          60_000,
        );
        expect(test.publisher.status().blocked).toMatch(/memory/i);
        // What /readyz reports: connected, but blocked, so not ready.
        const probe = new ReadinessProbe({
          pool: db.pool,
          publisher: test.publisher,
          gate: allowAllTenants(),
          timeoutMs: 2000,
        });
        const report = await probe.check();
        expect(report.ready).toBe(false);
        expect(report.checks.broker.detail).toMatch(/blocked by the broker/);
        const stalled = await db.counts();
        expect(stalled).toMatchObject({ pending: 6000, dead: 0 });
        // Still blocked, still nothing confirmed or delivered: enqueue more and
        // look again. The relay claims nothing while blocked, so what it holds
        // in memory (its rows in flight) cannot grow however much is written.
        const inFlightAtBlock = test.relay.inFlight();
        expect(inFlightAtBlock).toBeLessThanOrEqual(200 * 3);
        const heapBefore = process.memoryUsage().heapUsed;
        let mostInFlight = inFlightAtBlock;
        for (let round = 0; round < 10; round++) {
          await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 10);
          mostInFlight = Math.max(mostInFlight, test.relay.inFlight());
        }
        expect(mostInFlight).toBe(inFlightAtBlock);
        // The test process holds the relay too: its heap may move by GC noise, not by backlog.
        expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
        expect(await db.counts()).toMatchObject({ pending: 6300, dead: 0 });
        expect(broker.distinctIds().size).toBe(3000);
        expect(test.publisher.isReady()).toBe(false);
      } finally {
        restoreWatermark(original);
      }
      expect(readWatermark()).toEqual(original);
      await waitFor(() => test.publisher.isReady(), 'connection.unblocked', 60_000);
      await waitFor(
        () => broker.distinctIds().size === 9300,
        'every message after the alarm cleared',
        60_000,
      );
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
    } finally {
      await test.close();
    }
  });
});
