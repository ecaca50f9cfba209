import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { holdLiveness } from './helpers/database.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('relay', { resetEachTest: true });

/** One message of acme, whose tenant another relay holds for an hour while it lives; `release()` ends it. */
async function acmeLeasedToAnotherLiveRelay(): Promise<{ release(): Promise<void> }> {
  await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
    schema: fixture.db.schema,
  });
  const other = randomUUID();
  const alive = await holdLiveness(fixture.db, other);
  await fixture.db.pool.query(
    `insert into "${fixture.db.schema}".tenant_leases (tenant_id, relay_id, leased_until)
     values ('acme', $1, now() + interval '1 hour')`,
    [other],
  );
  return alive;
}

describe('Relay.runOnce', () => {
  it('publishes a committed row with its AMQP properties and deletes it once confirmed', async () => {
    const messageId = randomUUID();
    const [row] = await enqueue(
      fixture.db.pool,
      orderEvent(fixture.broker.exchange, 'acme', 1, {
        messageId,
        headers: { source: 'checkout', attempt: 2 },
      }),
      { schema: fixture.db.schema },
    );
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      const result = await relay.runOnce();
      expect(result).toEqual({ claimed: 1, published: 1, held: 0, failed: 0, dead: 0 });
      await waitFor(() => fixture.broker.received.length === 1, 'the message to arrive');
      const got = fixture.broker.received[0];
      expect(got?.messageId).toBe(messageId);
      expect(got?.routingKey).toBe('orders.acme');
      expect(JSON.parse(String(got?.body))).toEqual({ tenantId: 'acme', seq: 1 });
      expect(got?.properties.deliveryMode).toBe(2);
      expect(got?.properties.contentType).toBe('application/json');
      expect(got?.properties.type).toBe('order.created');
      const nowSeconds = Math.floor(Date.now() / 1000);
      expect(got?.properties.timestamp).toBeGreaterThan(nowSeconds - 60);
      expect(got?.properties.timestamp).toBeLessThanOrEqual(nowSeconds);
      expect(got?.properties.headers).toMatchObject({
        source: 'checkout',
        attempt: 2,
        'x-tenant-id': 'acme',
      });
      expect(row?.messageId).toBe(messageId);
      // The relay keeps its tenant lease until it stops (or the lease expires).
      expect(await fixture.db.counts()).toEqual({ pending: 0, leased: 1, published: 0, dead: 0 });
    } finally {
      await close();
    }
  });

  it('publishes Buffer payloads byte for byte with their content type', async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    await enqueue(
      fixture.db.pool,
      orderEvent(fixture.broker.exchange, 'acme', 1, {
        payload: bytes,
        contentType: 'application/x-bin',
      }),
      {
        schema: fixture.db.schema,
      },
    );
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      await relay.runOnce();
      await waitFor(() => fixture.broker.received.length === 1, 'the message to arrive');
      expect(fixture.broker.received[0]?.body.equals(bytes)).toBe(true);
      expect(fixture.broker.received[0]?.properties.contentType).toBe('application/x-bin');
    } finally {
      await close();
    }
  });

  it('does not publish rows of an uncommitted transaction, and publishes them after commit', async () => {
    const client = await fixture.db.pool.connect();
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      await client.query('begin');
      await enqueue(client, orderEvent(fixture.broker.exchange, 'acme', 1), {
        schema: fixture.db.schema,
      });
      expect((await relay.runOnce()).claimed).toBe(0);
      await client.query('commit');
      expect((await relay.runOnce()).published).toBe(1);
    } finally {
      client.release();
      await close();
    }
  });

  it('counts a message returned as unroutable as failed, not published, and backs it off', async () => {
    await enqueue(
      fixture.db.pool,
      orderEvent(fixture.broker.exchange, 'acme', 1, { routingKey: 'x', exchange: 'amq.direct' }),
      {
        schema: fixture.db.schema,
      },
    );
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      const result = await relay.runOnce();
      expect(result).toMatchObject({ claimed: 1, published: 0, failed: 1 });
      const { rows } = await fixture.db.pool.query(
        `select attempts, last_error, available_at > now() as backed_off from "${fixture.db.schema}".messages`,
      );
      expect(rows[0]).toMatchObject({ attempts: 1, backed_off: true });
      expect(rows[0].last_error).toMatch(/returned by the broker .*NO_ROUTE/);
      // Backed off: not claimable again right away.
      expect((await relay.runOnce()).claimed).toBe(0);
    } finally {
      await close();
    }
  });

  it('fails only the messages for a missing exchange; the others on the channel are published', async () => {
    await enqueue(
      fixture.db.pool,
      [
        orderEvent(fixture.broker.exchange, 'acme', 1),
        orderEvent('no-such-exchange', 'globex', 1),
        orderEvent(fixture.broker.exchange, 'initech', 1),
      ],
      { schema: fixture.db.schema },
    );
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url, { channels: 1 });
    try {
      let published = 0;
      for (let i = 0; i < 5 && published < 2; i++) published += (await relay.runOnce()).published;
      expect(published).toBe(2);
      const { rows } = await fixture.db.pool.query(
        `select tenant_id, attempts, last_error from "${fixture.db.schema}".messages`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ tenant_id: 'globex', attempts: 1 });
      // Named from the message itself; the broker's own text follows (cut at 255 bytes).
      expect(rows[0].last_error).toMatch(
        /to exchange 'no-such-exchange' .*: the broker closed its channel: .*404 \(NOT-FOUND\)/,
      );
    } finally {
      await close();
    }
  });

  it('marks a row dead after the configured number of attempts', async () => {
    await enqueue(fixture.db.pool, orderEvent('amq.direct', 'acme', 1, { routingKey: 'nowhere' }), {
      schema: fixture.db.schema,
    });
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url, {
      maxAttempts: 2,
    });
    try {
      for (let attempt = 1; attempt <= 2; attempt++) {
        await fixture.db.pool.query(
          `update "${fixture.db.schema}".messages set available_at = now()`,
        );
        expect((await relay.runOnce()).failed).toBe(1);
      }
      expect(await fixture.db.counts()).toMatchObject({ pending: 0, dead: 1 });
      expect((await relay.runOnce()).claimed).toBe(0);
    } finally {
      await close();
    }
  });

  it('leaves a tenant leased to another relay alone, and takes it over when that lease expires', async () => {
    // Another relay holds acme, and stays alive (its liveness lock held) but
    // stalls: it never publishes or renews.
    const alive = await acmeLeasedToAnotherLiveRelay();
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    onTestFinished(() => alive.release());
    try {
      expect((await relay.runOnce()).claimed).toBe(0);
      await fixture.db.pool.query(
        `update "${fixture.db.schema}".tenant_leases set leased_until = now() - interval '1 second'`,
      );
      expect((await relay.runOnce()).published).toBe(1);
      const { rows } = await fixture.db.pool.query(
        `select relay_id from "${fixture.db.schema}".tenant_leases`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0].relay_id).not.toBeNull();
    } finally {
      await close();
    }
  });

  it('takes over at once a tenant whose relay died (its liveness lock is free), with an hour left on the lease', async () => {
    const alive = await acmeLeasedToAnotherLiveRelay();
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      expect((await relay.runOnce()).claimed).toBe(0);
      // The other relay's session ends, as when its process is killed.
      await alive.release();
      expect((await relay.runOnce()).published).toBe(1);
    } finally {
      await close();
    }
  });

  it('keeps published rows for the retention period when one is configured', async () => {
    await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
      schema: fixture.db.schema,
    });
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url, {
      retentionMs: 3_600_000,
    });
    try {
      expect((await relay.runOnce()).published).toBe(1);
      expect(await fixture.db.counts()).toMatchObject({ pending: 0, published: 1 });
      expect((await relay.runOnce()).claimed).toBe(0);
    } finally {
      await close();
    }
  });

  it('interleaves tenants: a flooding tenant does not fill the whole batch', async () => {
    const flood = Array.from({ length: 300 }, (_, i) =>
      orderEvent(fixture.broker.exchange, 'flood', i),
    );
    await enqueue(fixture.db.pool, flood, { schema: fixture.db.schema });
    await enqueue(
      fixture.db.pool,
      [
        orderEvent(fixture.broker.exchange, 'small-a', 1),
        orderEvent(fixture.broker.exchange, 'small-b', 1),
      ],
      {
        schema: fixture.db.schema,
      },
    );
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url, {
      batchSize: 50,
    });
    try {
      // The small tenants' rows come after 300 flood rows, yet they ride in the first batch.
      const result = await relay.runOnce();
      await waitFor(() => fixture.broker.received.length === result.published, 'the first batch');
      const tenants = new Set(fixture.broker.received.map((m) => m.tenantId));
      expect(tenants).toEqual(new Set(['flood', 'small-a', 'small-b']));
      // Then the flood alone gets whole batches.
      fixture.broker.received.length = 0;
      expect((await relay.runOnce()).published).toBe(50);
    } finally {
      await close();
    }
  });

  it('gives back its tenant leases on stop, so another relay can take over at once', async () => {
    await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
      schema: fixture.db.schema,
    });
    const first = await createTestRelay(fixture.db, fixture.broker.url);
    const second = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      expect((await first.relay.runOnce()).published).toBe(1);
      expect(await fixture.db.counts()).toMatchObject({ pending: 0, leased: 1 });
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 2), {
        schema: fixture.db.schema,
      });
      // acme is leased to the first relay: the second one may not take it yet.
      expect((await second.relay.runOnce()).claimed).toBe(0);
      await first.relay.stop();
      expect(await fixture.db.counts()).toMatchObject({ pending: 1, leased: 0 });
      expect((await second.relay.runOnce()).published).toBe(1);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('ends a row inserted by plain SQL with content AMQP cannot carry as dead, with a clear error, and publishes the rest', async () => {
    const { db, broker } = fixture;
    // Plain SQL, as another language would insert: a 70 KB header exceeds AMQP's header table.
    await db.pool.query(
      `insert into "${db.schema}".messages (tenant_id, exchange, routing_key, payload, headers)
       values ('poison', $1, 'x', convert_to('{}', 'UTF8'), jsonb_build_object('big', repeat('x', 70000)))`,
      [broker.exchange],
    );
    await enqueue(db.pool, orderEvent(broker.exchange, 'healthy', 1), { schema: db.schema });
    const { relay, close } = await createTestRelay(db, broker.url, { maxAttempts: 5 });
    try {
      // Retrying cannot help: dead at the first attempt, whatever maxAttempts says.
      expect(await relay.runOnce()).toMatchObject({ published: 1, failed: 1, dead: 1 });
      const { rows } = await db.pool.query(
        `select tenant_id, attempts, last_error, dead_at is not null as dead from "${db.schema}".messages`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ tenant_id: 'poison', attempts: 1, dead: true });
      expect(rows[0].last_error).toMatch(/^cannot publish message .*: AMQP cannot encode it: .+/);
      await waitFor(
        () => broker.received.some((m) => m.tenantId === 'healthy'),
        'the healthy message',
      );
    } finally {
      await close();
    }
  });
});
