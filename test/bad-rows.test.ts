/**
 * One bad row never stops the others. Each case is a row the broker or AMQP
 * refuses, next to 50 good rows of another tenant on the same channel: the
 * good rows are published exactly once, the bad one ends dead or backing off
 * with an error that names it, and the relay keeps its one connection.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AmqpPublisher, connectionName } from '../src/broker/amqp-publisher.js';
import { silentLogger } from '../src/log/logger.js';
import { enqueue } from '../src/outbox/enqueue.js';
import type { OutgoingMessage, PublishResult } from '../src/relay/publisher.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay, type TestRelayOptions } from './helpers/relay.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('bad_rows', { resetEachTest: true });

/** Inserts one row of tenant `bad` by plain SQL, as another language would. */
async function insertBadRow(columns: {
  exchange?: string;
  payloadSql?: string;
  headers?: string;
}): Promise<void> {
  const { db, broker } = fixture;
  await db.pool.query(
    `insert into "${db.schema}".messages (tenant_id, exchange, routing_key, payload, headers)
     values ('bad', $1, 'r', ${columns.payloadSql ?? `'\\x7b7d'`}, $2::jsonb)`,
    [columns.exchange ?? broker.exchange, columns.headers ?? '{}'],
  );
}

/** Enqueues 50 good rows of tenant `good`; returns their message ids. */
async function enqueueGoodRows(): Promise<Set<string>> {
  const { db, broker } = fixture;
  const rows = await enqueue(
    db.pool,
    Array.from({ length: 50 }, (_, i) => orderEvent(broker.exchange, 'good', i)),
    { schema: db.schema },
  );
  return new Set(rows.map((row) => row.messageId));
}

/**
 * Runs a relay (one channel, so the bad row shares it with the good ones)
 * through a proxy that counts its connections, until every good row is
 * published and the bad row is no longer free to claim; returns the bad row.
 */
async function relayUntilSettled(
  good: Set<string>,
  options: TestRelayOptions = {},
): Promise<{ attempts: number; last_error: string | null; dead: boolean; connections: number }> {
  const { db, broker } = fixture;
  const proxy = await proxyFor(broker.url);
  const { relay, close } = await createTestRelay(db, proxy.url, {
    channels: 1,
    pollIntervalMs: 20,
    ...options,
  });
  try {
    relay.start();
    await waitFor(() => broker.distinctIds(['good']).size === good.size, 'the good rows', 60_000);
    const bad = async () =>
      (
        await db.pool.query(
          `select attempts, last_error, dead_at is not null as dead
           from "${db.schema}".messages where tenant_id = 'bad'`,
        )
      ).rows[0];
    await waitFor(async () => (await bad()).attempts > 0, 'the bad row to be blamed', 30_000);
    expect(broker.distinctIds(['good'])).toEqual(good);
    // Exactly once: nothing of the good tenant was sent twice.
    expect(broker.received.filter((m) => m.tenantId === 'good')).toHaveLength(good.size);
    // Received first, settled (deleted) just after.
    await waitFor(
      async () => (await db.counts()).pending === ((await bad()).dead ? 0 : 1),
      'the good rows to be settled',
    );
    return { ...(await bad()), connections: proxy.accepted() };
  } finally {
    await close();
    await proxy.close();
  }
}

describe('one bad row among good ones', () => {
  it('a header jsonb keeps as 1e400 (Infinity to JavaScript) goes dead at once; the connection stays up', async () => {
    // Sent, it would make RabbitMQ close the whole connection (541), over and over.
    await insertBadRow({ headers: '{"n": 1e400}' });
    const good = await enqueueGoodRows();
    const bad = await relayUntilSettled(good);
    expect(bad).toMatchObject({ attempts: 1, dead: true, connections: 1 });
    expect(bad.last_error).toMatch(/header 'n' is Infinity, which AMQP cannot carry/);
  });

  it('a missing exchange with a name longer than the broker quotes in its close text is blamed on its own row', async () => {
    // RabbitMQ cuts the 404 reply text at 255 bytes: the name is not in it.
    const exchange = `missing-${'e'.repeat(230)}`;
    await enqueue(fixture.db.pool, orderEvent(exchange, 'bad', 1), {
      schema: fixture.db.schema,
    });
    const good = await enqueueGoodRows();
    const bad = await relayUntilSettled(good);
    expect(bad).toMatchObject({ attempts: 1, dead: false, connections: 1 });
    expect(bad.last_error).toContain(`to exchange '${exchange}'`);
    expect(bad.last_error).toMatch(/404 \(NOT-FOUND\)/);
  });

  it('a channel error other than 404 (an internal exchange: 403) counts against its row alone', async () => {
    const internal = `internal-${randomUUID()}`;
    await fixture.broker.channel.assertExchange(internal, 'topic', {
      internal: true,
      autoDelete: false,
    });
    try {
      await insertBadRow({ exchange: internal });
      const good = await enqueueGoodRows();
      const bad = await relayUntilSettled(good);
      expect(bad).toMatchObject({ attempts: 1, dead: false, connections: 1 });
      expect(bad.last_error).toMatch(/403 \(ACCESS-REFUSED\)/);
      // None of the good rows counted an attempt or went dead.
      expect(await fixture.db.counts()).toMatchObject({ dead: 0 });
    } finally {
      await fixture.broker.channel.deleteExchange(internal);
    }
  });

  it('a CC header RabbitMQ refuses (406) goes dead at once, before it is sent', async () => {
    await insertBadRow({ headers: '{"CC": 5}' });
    const good = await enqueueGoodRows();
    const bad = await relayUntilSettled(good);
    expect(bad).toMatchObject({ attempts: 1, dead: true, connections: 1 });
    expect(bad.last_error).toMatch(/header 'CC' must be an array of routing keys/);
  });

  it("a body over the broker's 128 MiB max_message_size goes dead at once; its neighbours are published", async () => {
    // 130 MiB, built by the server. Sent, RabbitMQ would close the channel (406).
    await insertBadRow({ payloadSql: `convert_to(repeat('x', 130 * 1024 * 1024), 'UTF8')` });
    const good = await enqueueGoodRows();
    const bad = await relayUntilSettled(good);
    expect(bad).toMatchObject({ attempts: 1, dead: true, connections: 1 });
    expect(bad.last_error).toMatch(/the body is 136314880 bytes, over the 134217728-byte limit/);
  });
});

describe('a message that makes the broker close the whole connection', () => {
  it('is found among 200 others by sending the suspects alone, and is the only one to count an attempt', async () => {
    const { broker } = fixture;
    const proxy = await proxyFor(broker.url);
    // The pre-send check is off, so the broker itself must refuse the message.
    const publisher = await AmqpPublisher.connect({
      url: proxy.url,
      channels: 2,
      maxInFlight: 500,
      precheck: false,
      heartbeatMs: 10_000,
      confirmTimeoutMs: 15_000,
      connectTimeoutMs: 5000,
      connectionName: connectionName(),
      logger: silentLogger,
    });
    const message = (i: number, headers: Record<string, unknown> = {}): OutgoingMessage => ({
      id: String(i),
      messageId: randomUUID(),
      tenantId: `tenant-${i % 7}`,
      orderingScope: `key-${i}`,
      exchange: broker.exchange,
      routingKey: 'r',
      content: Buffer.from(`{"i":${i}}`),
      contentType: 'application/json',
      type: undefined,
      timestamp: 0,
      headers,
    });
    const poison = message(100, { n: Number.POSITIVE_INFINITY });
    let pending = [
      ...Array.from({ length: 100 }, (_, i) => message(i)),
      poison,
      ...Array.from({ length: 100 }, (_, i) => message(101 + i)),
    ];
    const outcomes = new Map<string, PublishResult>();
    try {
      // What the relay does: retry at once what failed without counting an attempt.
      for (let round = 0; round < 10 && pending.length > 0; round++) {
        await waitFor(() => publisher.isReady(), 'the publisher to reconnect', 10_000);
        const results = await publisher.publish(pending);
        const retry: OutgoingMessage[] = [];
        results.forEach((result, i) => {
          const m = pending[i] as OutgoingMessage;
          if (result.ok || result.error.countsAsAttempt) outcomes.set(m.id, result);
          else retry.push(m);
        });
        pending = retry;
      }
      expect(pending).toEqual([]);
      const counted = [...outcomes].filter(([, result]) => !result.ok);
      expect(counted.map(([id]) => id)).toEqual(['100']);
      const [, failure] = counted[0] as [string, PublishResult & { ok: false }];
      expect(failure.error.message).toMatch(/the broker closed the connection: .*541/);
      await waitFor(() => broker.distinctIds().size === 200, 'the 200 good messages');
      // The first close, and the one the poison message caused alone.
      expect(proxy.accepted()).toBeLessThanOrEqual(3);
    } finally {
      await publisher.close(1000);
      await proxy.close();
    }
  });
});
