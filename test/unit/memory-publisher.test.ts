/**
 * The in-memory publisher: the Publisher contract every adapter keeps, then
 * what it offers tests beyond it (messages held in flight until confirmed, a
 * chosen fate per message, a lost connection).
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryPublisher } from '../../src/broker/memory-publisher.js';
import type { OutgoingMessage } from '../../src/relay/publisher.js';
import { publisherConformance } from '../helpers/publisher-conformance.js';

const UNROUTED = 'nowhere';

publisherConformance(
  'MemoryPublisher',
  async () => {
    const publisher = new MemoryPublisher({
      outcome: (m) => (m.exchange === UNROUTED ? 'unroutable' : 'confirmed'),
    });
    return {
      publisher,
      exchange: 'events',
      unroutableExchange: UNROUTED,
      received: () =>
        publisher.published.map((m) => ({
          messageId: m.messageId,
          routingKey: m.routingKey,
          content: m.content,
          contentType: m.contentType,
          type: m.type,
          headers: m.headers,
        })),
      cleanup: () => publisher.close(0),
    };
  },
  { unroutable: true },
);

function message(seq: number, exchange = 'events'): OutgoingMessage {
  return {
    id: String(seq + 1),
    messageId: randomUUID(),
    tenantId: 'acme',
    orderingScope: 'orders',
    exchange,
    routingKey: 'orders.created',
    content: Buffer.from(`{"seq":${seq}}`),
    contentType: 'application/json',
    type: undefined,
    timestamp: 0,
    headers: {},
  };
}

describe('the in-memory publisher', () => {
  it('with manual confirms, holds messages in flight until confirmed, oldest first', async () => {
    const publisher = new MemoryPublisher({ manualConfirms: true });
    const batch = [0, 1, 2].map((seq) => message(seq));
    let settled = false;
    const results = publisher.publish(batch).then((r) => {
      settled = true;
      return r;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    expect(publisher.unconfirmedCount).toBe(3);
    expect(publisher.published).toEqual([]);

    expect(publisher.confirm(2)).toBe(2);
    expect(publisher.published).toEqual(batch.slice(0, 2));
    expect(publisher.unconfirmedCount).toBe(1);
    expect(publisher.confirm()).toBe(1);
    await expect(results).resolves.toEqual([{ ok: true }, { ok: true }, { ok: true }]);
  });

  it('gives each message the fate chosen for it, and publishes only the confirmed ones', async () => {
    const publisher = new MemoryPublisher({
      outcome: (m) => (m.id === '2' ? 'nacked' : m.id === '3' ? 'unroutable' : 'confirmed'),
    });
    const batch = [0, 1, 2, 3].map((seq) => message(seq));
    const results = await publisher.publish(batch);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.kind))).toEqual([
      'ok',
      'nacked',
      'unroutable',
      'ok',
    ]);
    expect(results[1]).toMatchObject({ error: { countsAsAttempt: true } });
    expect(publisher.published).toEqual([batch[0], batch[3]]);
  });

  it('fails what is in flight when the connection is lost, and refuses to publish until it is back', async () => {
    const publisher = new MemoryPublisher({ manualConfirms: true });
    const inFlight = publisher.publish([message(0)]);
    publisher.disconnect();
    expect(publisher.isReady()).toBe(false);
    expect(publisher.status()).toEqual({ connected: false, blocked: undefined, channels: 0 });
    const [lost] = await inFlight;
    expect(lost).toMatchObject({
      ok: false,
      error: { kind: 'connection-lost', countsAsAttempt: false },
    });
    const [refused] = await publisher.publish([message(1)]);
    expect(refused).toMatchObject({ ok: false, error: { kind: 'connection-lost' } });

    publisher.reconnect();
    expect(publisher.isReady()).toBe(true);
    const later = publisher.publish([message(2)]);
    publisher.confirm();
    await expect(later).resolves.toEqual([{ ok: true }]);
    expect(publisher.published.map((m) => m.id)).toEqual(['3']);
  });

  it('on close, fails what is still unconfirmed when the timeout runs out', async () => {
    const publisher = new MemoryPublisher({ manualConfirms: true });
    const inFlight = publisher.publish([message(0), message(1)]);
    publisher.confirm(1);
    await publisher.close(20);
    const results = await inFlight;
    expect(results[0]).toEqual({ ok: true });
    expect(results[1]).toMatchObject({
      ok: false,
      error: { kind: 'connection-lost', countsAsAttempt: false },
    });
  });

  it('on close, returns as soon as the last confirm comes', async () => {
    const publisher = new MemoryPublisher({ manualConfirms: true });
    const inFlight = publisher.publish([message(0)]);
    const closed = publisher.close(60_000);
    publisher.confirm();
    await closed;
    await expect(inFlight).resolves.toEqual([{ ok: true }]);
  });
});
