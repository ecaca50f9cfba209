/**
 * The contract of the Publisher port (src/relay/publisher.ts), as one suite
 * that every adapter runs with a factory of its own: the in-memory publisher
 * in test/unit/, the AMQP publisher on a real RabbitMQ in
 * test/amqp-publisher-conformance.test.ts. What the relay relies on:
 * - one result per message, in input order, and a promise that never rejects;
 * - a message is published only once confirmed, and then reaches a consumer
 *   once, as it was sent; an unroutable one fails, at its place in the batch;
 * - messages of one ordering scope reach the broker in the order given, also
 *   across publish calls made without waiting for the earlier ones;
 * - close waits for the confirms of messages in flight; a publish after close
 *   fails at once, message by message, without counting an attempt (nothing
 *   was wrong with the messages), and the publisher is no longer ready.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PublishError } from '../../src/errors.js';
import type { OutgoingMessage, Publisher, PublishResult } from '../../src/relay/publisher.js';
import { waitFor } from './wait.js';

/** A message as a consumer of the adapter's broker saw it. */
export interface ReceivedMessage {
  messageId: string;
  routingKey: string;
  content: Buffer;
  contentType: string | undefined;
  type: string | undefined;
  headers: Record<string, unknown>;
}

/** A publisher made for one test, and the broker-side view of what it sent. */
export interface PublisherUnderTest {
  publisher: Publisher;
  /** An exchange whose messages reach a consumer. */
  exchange: string;
  /** An exchange that routes nowhere (used only when the adapter can tell, see {@link Capabilities}). */
  unroutableExchange: string;
  /** Every message the consumer has received so far, in arrival order. */
  received(): readonly ReceivedMessage[];
  /** Closes the publisher if the test has not, and frees the broker objects. */
  cleanup(): Promise<void>;
}

/** What each test message carries in its body, to be found again on the consumer side. */
interface Body {
  tenant: string;
  scope: string;
  seq: number;
}

let lastId = 0;

/** One message; ids grow across the suite, as outbox row ids do. */
function message(exchange: string, body: Body): OutgoingMessage {
  lastId += 1;
  return {
    id: String(lastId),
    messageId: randomUUID(),
    tenantId: body.tenant,
    orderingScope: body.scope,
    exchange,
    routingKey: `conformance.${body.tenant}`,
    content: Buffer.from(JSON.stringify(body)),
    contentType: 'application/json',
    type: 'conformance.event',
    timestamp: 1_700_000_000,
    headers: { 'x-seq': body.seq, 'x-origin': 'conformance' },
  };
}

function bodyOf(received: ReceivedMessage): Body {
  return JSON.parse(received.content.toString('utf8')) as Body;
}

/** Waits until the consumer holds `count` messages. */
async function receivedCount(sut: PublisherUnderTest, count: number): Promise<void> {
  await waitFor(() => sut.received().length >= count, `${count} messages at the consumer`, 9_000);
}

/** What an adapter can express; the contract's cases that need it are registered only then. */
export interface Capabilities {
  /** It fails a message no queue is bound for (AMQP: mandatory and basic.return). */
  unroutable: boolean;
}

/** Registers the Publisher contract for the adapter `create` makes, one fresh publisher a test. */
export function publisherConformance(
  name: string,
  create: () => Promise<PublisherUnderTest>,
  capabilities: Capabilities,
): void {
  describe(`${name} keeps the Publisher contract`, () => {
    let sut: PublisherUnderTest;
    beforeEach(async () => {
      sut = await create();
    });
    afterEach(async () => {
      await sut.cleanup();
    });

    it('is ready once made, and resolves an empty batch to no results', async () => {
      expect(sut.publisher.isReady()).toBe(true);
      await expect(sut.publisher.publish([])).resolves.toEqual([]);
    });

    it('confirms each message with one result, in input order, and delivers it once as it was sent', async () => {
      const batch = Array.from({ length: 50 }, (_, seq) =>
        message(sut.exchange, { tenant: `t${seq % 3}`, scope: 's', seq }),
      );
      const results = await sut.publisher.publish(batch);
      expect(results).toEqual(batch.map(() => ({ ok: true })));

      await receivedCount(sut, batch.length);
      const received = sut.received();
      expect(received.map((m) => m.messageId).sort()).toEqual(batch.map((m) => m.messageId).sort());
      const sent = batch[7] as OutgoingMessage;
      const got = received.find((m) => m.messageId === sent.messageId);
      expect(got).toMatchObject({
        routingKey: sent.routingKey,
        contentType: sent.contentType,
        type: sent.type,
        headers: expect.objectContaining(sent.headers),
      });
      expect(got?.content.equals(sent.content)).toBe(true);
    });

    it('keeps the order of each ordering scope, across publish calls made without waiting', async () => {
      const scopes = ['a', 'b'].flatMap((tenant) =>
        ['orders', 'users', 'billing'].map((scope) => ({ tenant, scope })),
      );
      const perScope = 40;
      const all = Array.from({ length: perScope }, (_, seq) =>
        scopes.map((s) => message(sut.exchange, { ...s, seq })),
      ).flat();
      // Four calls in a row, as the relay publishes batch after batch.
      const calls = [0, 1, 2, 3].map((i) =>
        sut.publisher.publish(all.slice((i * all.length) / 4, ((i + 1) * all.length) / 4)),
      );
      const results = (await Promise.all(calls)).flat();
      expect(results.filter((r) => !r.ok)).toEqual([]);

      await receivedCount(sut, all.length);
      const order = new Map<string, number[]>();
      for (const body of sut.received().map(bodyOf)) {
        const key = `${body.tenant}/${body.scope}`;
        order.set(key, [...(order.get(key) ?? []), body.seq]);
      }
      const expected = Array.from({ length: perScope }, (_, seq) => seq);
      expect(order.size).toBe(scopes.length);
      for (const seqs of order.values()) expect(seqs).toEqual(expected);
    });

    it('waits on close for the confirms of messages in flight', async () => {
      const batch = Array.from({ length: 200 }, (_, seq) =>
        message(sut.exchange, { tenant: `t${seq % 5}`, scope: `k${seq % 11}`, seq }),
      );
      const published = sut.publisher.publish(batch);
      await sut.publisher.close(10_000);
      const results = await published;
      expect(results).toEqual(batch.map(() => ({ ok: true })));
      await receivedCount(sut, batch.length);
    });

    it('settles every message when closed without waiting, failing only without counting an attempt', async () => {
      const batch = Array.from({ length: 500 }, (_, seq) =>
        message(sut.exchange, { tenant: `t${seq % 5}`, scope: `k${seq % 11}`, seq }),
      );
      const published = sut.publisher.publish(batch);
      await sut.publisher.close(0);
      const results = await published;
      expect(results).toHaveLength(batch.length);
      for (const result of results) {
        if (result.ok) continue;
        expect(result.error).toBeInstanceOf(PublishError);
        expect(result.error.countsAsAttempt).toBe(false);
      }
    });

    it('fails a publish after close at once, per message and without counting an attempt, and is not ready', async () => {
      await sut.publisher.close(1000);
      expect(sut.publisher.isReady()).toBe(false);
      const batch = [0, 1, 2].map((seq) => message(sut.exchange, { tenant: 't', scope: 's', seq }));
      const results = await sut.publisher.publish(batch);
      expect(results).toHaveLength(batch.length);
      for (const result of results) {
        expect(result.ok).toBe(false);
        const { error } = result as PublishResult & { ok: false };
        expect(error).toBeInstanceOf(PublishError);
        expect(error).toMatchObject({ code: 'PUBLISH_FAILED', countsAsAttempt: false });
      }
    });

    // An adapter that cannot tell an unroutable message makes no promise about one.
    if (!capabilities.unroutable) return;
    it('fails an unroutable message, and only it, at its place in the batch', async () => {
      const unroutable = sut.unroutableExchange;
      const nowhere = new Set([3, 7]);
      const batch = Array.from({ length: 10 }, (_, seq) =>
        message(nowhere.has(seq) ? unroutable : sut.exchange, { tenant: 't', scope: 's', seq }),
      );
      const results = await sut.publisher.publish(batch);
      expect(results).toHaveLength(batch.length);
      results.forEach((result, seq) => {
        if (!nowhere.has(seq)) {
          expect(result).toEqual({ ok: true });
          return;
        }
        expect(result.ok).toBe(false);
        const { error } = result as PublishResult & { ok: false };
        expect(error).toBeInstanceOf(PublishError);
        expect(error).toMatchObject({ kind: 'unroutable', countsAsAttempt: true });
        expect(error.message).toContain((batch[seq] as OutgoingMessage).messageId);
      });
      await receivedCount(sut, batch.length - nowhere.size);
      expect(sut.received().map((m) => bodyOf(m).seq)).toEqual([0, 1, 2, 4, 5, 6, 8, 9]);
    });
  });
}
