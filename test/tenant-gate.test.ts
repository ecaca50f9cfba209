import { integrations } from '@launchdarkly/node-server-sdk';
import { describe, expect, it } from 'vitest';
import { createLogger, type Logger, silentLogger } from '../src/log/logger.js';
import type { BatchOutcome } from '../src/relay/relay-observer.js';
import { testDataClient } from '../src/tenants/flag-client.js';
import { FlagTenantGate } from '../src/tenants/flag-tenant-gate.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { rateLimitFlag } from './helpers/flags.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { unavailableFlagsGate } from './helpers/unavailable-flags.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('tenants', { resetEachTest: true });

/** A gate over its own TestData source (one TestData per client). */
async function testGate(options: { failClosed?: boolean; logger?: Logger } = {}) {
  const testData = new integrations.TestData();
  testData.update(testData.flag('outbox-publish-enabled').booleanFlag().fallthroughVariation(true));
  const client = await testDataClient(testData);
  const gate = new FlagTenantGate(client, {
    publishFlagKey: 'outbox-publish-enabled',
    rateFlagKey: 'outbox-tenant-rate-limit',
    failClosed: options.failClosed ?? false,
    logger: options.logger ?? silentLogger,
  });
  const pause = (tenant: string, paused: boolean) =>
    testData.update(
      testData
        .flag('outbox-publish-enabled')
        .booleanFlag()
        .fallthroughVariation(true)
        .variationForContext('tenant', tenant, !paused),
    );
  return { gate, testData, pause };
}

/**
 * A JSON logger that keeps its lines, and `change(flip)`: makes a flag change
 * and returns the `tenant flags changed` line it caused, parsed.
 */
function flagChangeLog() {
  const entries: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    format: 'json',
    colorize: false,
    destination: { write: (line) => entries.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const changes = () => entries.filter((entry) => entry.msg === 'tenant flags changed');
  const change = async (flip: () => Promise<unknown>) => {
    const before = changes().length;
    await flip();
    await waitFor(() => changes().length > before, 'a tenant flags changed line', 5000);
    return changes().at(-1);
  };
  return { logger, change };
}

function seqsOf(tenant: string): number[] {
  return fixture.broker.received
    .filter((m) => m.tenantId === tenant)
    .map((m) => (JSON.parse(String(m.body)) as { seq: number }).seq);
}

describe('the per-tenant kill switch', () => {
  it("holds a paused tenant's events while others flow, then publishes them in order once resumed", async () => {
    const { db, broker } = fixture;
    const { gate, pause } = await testGate();
    await pause('acme', true);
    const test = await createTestRelay(db, broker.url, { gate, batchSize: 50, pollIntervalMs: 50 });
    try {
      test.relay.start();
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex', 'initech'], 200);
      await waitFor(
        () => seqsOf('globex').length === 200 && seqsOf('initech').length === 200,
        'the other tenants',
      );
      expect(seqsOf('acme')).toEqual([]);
      // Held, not failed: no attempt counted, nothing dead.
      const { rows } = await db.pool.query(
        `select count(*)::int as n, max(attempts)::int as attempts, count(dead_at)::int as dead
         from "${db.schema}".messages where tenant_id = 'acme'`,
      );
      expect(rows[0]).toEqual({ n: 200, attempts: 0, dead: 0 });

      await pause('acme', false);
      await waitFor(() => seqsOf('acme').length === 200, "acme's held events");
      expect(seqsOf('acme')).toEqual(Array.from({ length: 200 }, (_, i) => i));
      // Consumers can see the last batch before the relay has deleted it.
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      expect(await db.counts()).toMatchObject({ pending: 0, dead: 0 });
      expect(broker.distinctIds().size).toBe(600);
    } finally {
      await test.close();
      await gate.close();
    }
  });

  it('takes a pause into effect within one batch while the tenant is flowing', async () => {
    const { db, broker } = fixture;
    const { gate, pause } = await testGate();
    const outcomes: BatchOutcome[] = [];
    const observer = {
      claimed: () => undefined,
      batchSettled: (o: BatchOutcome) => outcomes.push(o),
    };
    const test = await createTestRelay(db, broker.url, {
      gate,
      batchSize: 20,
      pollIntervalMs: 50,
      observer,
    });
    try {
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 400);
      // One batch goes out, then acme is paused: at most the batch in hand follows.
      expect((await test.relay.runOnce()).published).toBe(20);
      await pause('acme', true);
      const next = await test.relay.runOnce();
      expect(next).toMatchObject({ published: 0, held: next.claimed });
      // Reported as held for the pause (messages_held_total{reason="paused"}).
      expect(outcomes.at(-1)?.held).toEqual({ paused: next.claimed, throttled: 0, fenced: 0 });
      // Known paused: later claims skip acme in SQL.
      expect((await test.relay.runOnce()).claimed).toBe(0);
      expect(gate.pausedTenants()).toEqual(['acme']);
    } finally {
      await test.close();
      await gate.close();
    }
  });

  it('throttles a tenant to its rate limit flag, and others not at all', async () => {
    const { db, broker } = fixture;
    const { gate, testData } = await testGate();
    await testData.usePreconfiguredFlag(rateLimitFlag({ acme: 20 }, 10));
    const test = await createTestRelay(db, broker.url, { gate, pollIntervalMs: 50 });
    try {
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 200);
      const started = Date.now();
      test.relay.start();
      await waitFor(() => seqsOf('globex').length === 200, 'globex, unthrottled');
      await waitFor(() => seqsOf('acme').length >= 30, 'acme, throttled');
      const seconds = (Date.now() - started) / 1000;
      // At 20/s with a one-second burst: never more than 20 + 20 per second elapsed.
      expect(seqsOf('acme').length).toBeLessThanOrEqual(Math.ceil(20 + 20 * seconds) + 1);
      expect(seqsOf('acme')).toEqual(Array.from({ length: seqsOf('acme').length }, (_, i) => i));
    } finally {
      await test.close();
      await gate.close();
    }
  });

  it('fails open when the flag source is unavailable, and closed when configured to', async () => {
    const { db, broker } = fixture;
    // A client whose source never initializes: TestData that was never given a flag is
    // initialized, so use an unreachable streaming endpoint instead.
    const [open, closed] = await Promise.all([
      unavailableFlagsGate(false),
      unavailableFlagsGate(true),
    ]);
    try {
      expect(open.status()).toMatchObject({ initialized: false, failing: 'open' });
      expect(closed.status()).toMatchObject({ initialized: false, failing: 'closed' });
      expect(closed.closed()).toBe(true);
      expect((await open.decide(['acme'])).get('acme')).toMatchObject({ paused: false });
      expect((await closed.decide(['acme'])).get('acme')).toMatchObject({ paused: true });

      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 5);
      const relayOpen = await createTestRelay(db, broker.url, { gate: open });
      try {
        expect((await relayOpen.relay.runOnce()).published).toBe(5);
      } finally {
        await relayOpen.close();
      }
    } finally {
      await open.close();
      await closed.close();
    }
  });
});

describe('the tenant flags changed log line', () => {
  it('counts the tenants paused and throttled after the change, not before it', async () => {
    const { logger, change } = flagChangeLog();
    const { gate, testData, pause } = await testGate({ logger });
    try {
      // What the relay does when it claims rows: the gate learns the tenants.
      await gate.decide(['acme', 'globex', 'initech']);

      expect(await change(() => pause('acme', true))).toMatchObject({ paused: 1, throttled: 0 });
      expect(gate.pausedTenants()).toEqual(['acme']);
      expect(await change(() => pause('acme', false))).toMatchObject({ paused: 0, throttled: 0 });
      expect(gate.pausedTenants()).toEqual([]);

      expect(
        await change(() => testData.usePreconfiguredFlag(rateLimitFlag({ initech: 20 }, 10))),
      ).toMatchObject({ paused: 0, throttled: 1 });
      expect(
        await change(() => testData.usePreconfiguredFlag(rateLimitFlag({}, 11))),
      ).toMatchObject({ paused: 0, throttled: 0 });
    } finally {
      await gate.close();
    }
  });

  it('past 10,000 tenants forgets the least recently decided enabled one, never a paused one', async () => {
    const { logger, change } = flagChangeLog();
    const { gate, pause } = await testGate({ logger });
    try {
      await change(() => pause('acme', true));
      await gate.decide(['acme']);
      // acme is now the least recently decided, but paused: t-0 is forgotten instead.
      await gate.decide(Array.from({ length: 10_000 }, (_, i) => `t-${i}`));

      // Targets add up (TestData's flag() starts from the last update): t-0 and
      // t-1 end up paused, but only remembered tenants are evaluated and counted.
      expect(await change(() => pause('acme', false))).toMatchObject({ paused: 0 });
      expect(await change(() => pause('t-0', true))).toMatchObject({ paused: 0 });
      expect(await change(() => pause('t-1', true))).toMatchObject({ paused: 1 });
      expect(gate.pausedTenants()).toEqual(['t-1']);
    } finally {
      await gate.close();
    }
  });
});
