/**
 * The confirm lane's state machine against a fake confirm channel that the
 * test drives: the broker's acks, nacks and basic.returns, a full socket
 * buffer, and a channel closed with unconfirmed messages on it. Only what the
 * lane promises is checked: the order of writes, the window, each message's
 * result, and what it hands to its publisher when the channel closes.
 */
import { EventEmitter } from 'node:events';
import type { ConfirmChannel } from 'amqplib';
import { describe, expect, it, vi } from 'vitest';
import {
  type ChannelCloseError,
  ConfirmLane,
  type ConfirmLaneOptions,
  type LostMessage,
} from '../../src/broker/confirm-lane.js';
import { PublishError } from '../../src/errors.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutgoingMessage, PublishResult } from '../../src/relay/publisher.js';

type Confirm = (error: unknown) => void;

/** One basic.publish as the channel saw it. */
interface Write {
  exchange: string;
  routingKey: string;
  content: Buffer;
  options: Record<string, unknown>;
  confirm: Confirm;
}

/** A confirm channel whose broker side the test plays, with amqplib's order of events on a close. */
class FakeChannel extends EventEmitter {
  readonly writes: Write[] = [];
  /** What publish() returns: false once the socket buffer is full. */
  writable = true;
  /** Thrown by the next publish(), if set. */
  throwOnPublish: Error | undefined;
  closedByClient = false;
  private open = true;

  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: Record<string, unknown>,
    confirm: Confirm,
  ): boolean {
    const error = this.throwOnPublish;
    this.throwOnPublish = undefined;
    if (error) throw error;
    this.writes.push({ exchange, routingKey, content, options, confirm });
    return this.writable;
  }

  ack(index: number): void {
    (this.writes[index] as Write).confirm(null);
  }

  nack(index: number): void {
    (this.writes[index] as Write).confirm(new Error('message nacked'));
  }

  /** basic.return of a mandatory message no queue is bound for. */
  returnUnroutable(index: number): void {
    const write = this.writes[index] as Write;
    this.emit('return', {
      fields: { replyCode: 312, replyText: 'NO_ROUTE', exchange: write.exchange },
      properties: { messageId: write.options.messageId },
      content: write.content,
    });
  }

  /**
   * The channel goes: amqplib emits 'error' (a broker close only), fails every
   * unconfirmed callback with 'channel closed', then emits 'close'.
   */
  closeWith(error: ChannelCloseError | undefined, unconfirmed: readonly number[]): void {
    if (!this.open) return;
    this.open = false;
    if (error) this.emit('error', error);
    for (const index of unconfirmed) {
      (this.writes[index] as Write).confirm(new Error('channel closed'));
    }
    this.emit('close');
  }

  async close(): Promise<void> {
    this.closedByClient = true;
    this.open = false;
    this.emit('close');
  }

  asConfirmChannel(): ConfirmChannel {
    return this as unknown as ConfirmChannel;
  }
}

let lastId = 0;

function message(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  lastId += 1;
  return {
    id: String(lastId),
    messageId: `m-${lastId}`,
    tenantId: 'acme',
    orderingScope: 'orders',
    exchange: 'events',
    routingKey: 'orders.created',
    content: Buffer.from(`{"n":${lastId}}`),
    contentType: 'application/json',
    type: 'order.created',
    timestamp: 1_700_000_000,
    headers: { 'x-tenant-id': 'acme' },
    ...overrides,
  };
}

/** A lane on fake channels, what it handed over on closes, and the results as they land. */
function setup({
  mayWrite = () => true,
  ...options
}: Partial<ConfirmLaneOptions> & { mayWrite?: () => boolean } = {}) {
  const channels: FakeChannel[] = [];
  const closes: { lost: readonly LostMessage[]; error: ChannelCloseError | undefined }[] = [];
  let openFails: Error | undefined;
  const lane = new ConfirmLane({
    window: 10,
    open: async () => {
      if (openFails) throw openFails;
      const channel = new FakeChannel();
      channels.push(channel);
      return channel.asConfirmChannel();
    },
    logger: silentLogger,
    confirmTimeout: { ms: 60_000, blocked: () => false },
    hooks: {
      mayWrite,
      channelClosed: (_lane, lost, error) => closes.push({ lost, error }),
      settled: () => undefined,
    },
    ...options,
  });
  const results = new Map<string, PublishResult>();
  /** Queues `m` on the lane and records its result under its message id. */
  const send = (m: OutgoingMessage): Promise<PublishResult> =>
    lane.enqueue(m).then((result) => {
      results.set(m.messageId, result);
      return result;
    });
  const channel = (i = 0) => channels[i] as FakeChannel;
  const written = (i = 0) => channels[i]?.writes.map((w) => w.options.messageId) ?? [];
  return {
    lane,
    send,
    results,
    channels,
    channel,
    written,
    closes,
    failOpens: (error: Error | undefined) => {
      openFails = error;
    },
  };
}

function failure(result: PublishResult | undefined): PublishError {
  expect(result?.ok).toBe(false);
  return (result as PublishResult & { ok: false }).error;
}

describe('the confirm lane', () => {
  it('writes messages in the order queued, as persistent mandatory messages, and resolves each on its ack', async () => {
    const { send, channel, written, results } = setup();
    const batch = [message(), message({ type: undefined }), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(3));
    expect(written()).toEqual(batch.map((m) => m.messageId));
    const [first] = batch as [OutgoingMessage];
    expect(channel().writes[0]).toMatchObject({
      exchange: first.exchange,
      routingKey: first.routingKey,
      content: first.content,
      options: {
        persistent: true,
        mandatory: true,
        messageId: first.messageId,
        contentType: first.contentType,
        type: first.type,
        timestamp: first.timestamp,
        headers: first.headers,
      },
    });
    expect(channel().writes[1]?.options.type).toBeUndefined();

    channel().ack(0);
    await sent[0];
    expect([...results.keys()]).toEqual([first.messageId]);
    channel().ack(1);
    channel().ack(2);
    await expect(Promise.all(sent)).resolves.toEqual([{ ok: true }, { ok: true }, { ok: true }]);
  });

  it('keeps at most `window` messages unconfirmed, writing the next as each is acked', async () => {
    const { lane, send, channel, written } = setup({ window: 2 });
    const batch = [message(), message(), message(), message(), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(2));
    expect(lane.unconfirmedCount).toBe(2);
    expect(lane.size).toBe(5);

    channel().ack(0);
    expect(written()).toEqual(batch.slice(0, 3).map((m) => m.messageId));
    channel().ack(1);
    channel().ack(2);
    channel().ack(3);
    expect(written()).toHaveLength(5);
    channel().ack(4);
    await expect(Promise.all(sent)).resolves.toHaveLength(5);
    expect(lane.size).toBe(0);
  });

  it('fails a nacked message, counting an attempt, and confirms the others', async () => {
    const { send, channel, written } = setup();
    const batch = [message(), message(), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(3));
    channel().ack(0);
    channel().nack(1);
    channel().ack(2);
    const [first, nacked, third] = await Promise.all(sent);
    expect(first).toEqual({ ok: true });
    expect(third).toEqual({ ok: true });
    expect(failure(nacked)).toMatchObject({ kind: 'nacked', countsAsAttempt: true });
    expect(failure(nacked).message).toContain(batch[1]?.messageId);
  });

  it('fails a message the broker returned as unroutable, though its ack follows', async () => {
    const { send, channel, written } = setup();
    const routed = message();
    const unrouted = message({ exchange: 'nowhere', routingKey: 'lost.key' });
    const sent = [routed, unrouted].map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(2));
    channel().returnUnroutable(1);
    channel().ack(0);
    channel().ack(1);
    const [ok, returned] = await Promise.all(sent);
    expect(ok).toEqual({ ok: true });
    const error = failure(returned);
    expect(error).toMatchObject({ kind: 'unroutable', countsAsAttempt: true, permanent: false });
    expect(error.message).toMatch(/312 NO_ROUTE.*exchange 'nowhere'.*routing key 'lost\.key'/);
  });

  it("stops writing when the channel's buffer is full, and goes on at 'drain'", async () => {
    const { lane, send, channel, written } = setup();
    const batch = [message(), message(), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(3));
    // The next write fills the buffer: nothing more until the socket drains.
    channel().writable = false;
    const more = [message(), message()];
    const sentMore = more.map(send);
    expect(written()).toHaveLength(4);
    expect(lane.size).toBe(5);
    channel().writable = true;
    channel().emit('drain');
    expect(written()).toHaveLength(5);
    for (let i = 0; i < 5; i++) channel().ack(i);
    await expect(Promise.all([...sent, ...sentMore])).resolves.toHaveLength(5);
  });

  it('hands every unconfirmed message to the publisher when the broker closes the channel, in order, with the error and the returns', async () => {
    const { send, channel, written, closes, results } = setup();
    const batch = [message(), message(), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(3));
    channel().ack(0);
    channel().returnUnroutable(2);
    const brokerError: ChannelCloseError = Object.assign(
      new Error('Channel closed by server: 406 (PRECONDITION-FAILED)'),
      { code: 406 },
    );
    channel().closeWith(brokerError, [1, 2]);

    expect(closes).toHaveLength(1);
    const [{ lost, error }] = closes as [(typeof closes)[number]];
    expect(error).toBe(brokerError);
    expect(lost.map((l) => l.message)).toEqual(batch.slice(1));
    expect(lost.map((l) => l.returned)).toEqual([undefined, '312 NO_ROUTE']);
    // amqplib's 'channel closed' callbacks settled nothing: the publisher decides.
    await sent[0];
    expect([...results.keys()]).toEqual([batch[0]?.messageId]);

    const rejected = new PublishError('rejected', 'the broker closed its channel');
    lost[0]?.settle({ ok: false, error: rejected });
    lost[1]?.settle({ ok: true });
    await expect(Promise.all(sent)).resolves.toEqual([
      { ok: true },
      { ok: false, error: rejected },
      { ok: true },
    ]);
  });

  it('hands over without an error when the channel closes under it (connection lost), and writes what follows on a new channel', async () => {
    const { send, channel, written, closes, channels } = setup();
    const before = message();
    const lostSend = send(before);
    await vi.waitFor(() => expect(written()).toHaveLength(1));
    channel().closeWith(undefined, [0]);
    expect(closes.map((c) => [c.lost.map((l) => l.message), c.error])).toEqual([
      [[before], undefined],
    ]);
    closes[0]?.lost[0]?.settle({ ok: true });
    await lostSend;

    const after = message();
    const sent = send(after);
    await vi.waitFor(() => expect(written(1)).toEqual([after.messageId]));
    expect(channels).toHaveLength(2);
    channel(1).ack(0);
    await expect(sent).resolves.toEqual({ ok: true });
  });

  it('fails what is queued, without counting an attempt, when no channel can be opened', async () => {
    const { send, failOpens } = setup();
    failOpens(new Error('connect ECONNREFUSED 127.0.0.1:5672'));
    const results = await Promise.all([message(), message()].map(send));
    for (const result of results) {
      const error = failure(result);
      expect(error).toMatchObject({ kind: 'connection-lost', countsAsAttempt: false });
      expect(error.message).toContain('ECONNREFUSED');
    }
  });

  it('fails a message amqplib cannot encode permanently, one the closing channel refused without counting an attempt, and writes the rest', async () => {
    const { send, channel, written, lane } = setup();
    const first = message();
    const firstSent = send(first);
    await vi.waitFor(() => expect(written()).toHaveLength(1));

    channel().throwOnPublish = new TypeError('value out of range');
    const unencodable = await send(message());
    expect(failure(unencodable)).toMatchObject({ kind: 'unpublishable', permanent: true });

    channel().throwOnPublish = Object.assign(new Error('Channel closing'), {
      name: 'IllegalOperationError',
    });
    const refused = await send(message());
    expect(failure(refused)).toMatchObject({ kind: 'connection-lost', countsAsAttempt: false });

    const last = message();
    const lastSent = send(last);
    expect(written()).toEqual([first.messageId, last.messageId]);
    expect(lane.unconfirmedCount).toBe(2);
    channel().ack(0);
    channel().ack(1);
    await expect(Promise.all([firstSent, lastSent])).resolves.toEqual([{ ok: true }, { ok: true }]);
  });

  it('writes only while its publisher allows, and resumes on pump()', async () => {
    let allowed = false;
    const { lane, send, channel, channels, written } = setup({ mayWrite: () => allowed });
    const sent = send(message());
    await vi.waitFor(() => expect(channels).toHaveLength(1));
    expect(written()).toEqual([]);
    allowed = true;
    lane.pump();
    expect(written()).toHaveLength(1);
    channel().ack(0);
    await expect(sent).resolves.toEqual({ ok: true });
  });

  it('fails the queued messages picked, keeping the others queued in order', async () => {
    let allowed = false;
    const { lane, send, channels, written } = setup({ mayWrite: () => allowed });
    const batch = ['a', 'b', 'a', 'b'].map((scope) => message({ orderingScope: scope }));
    const sent = batch.map(send);
    await vi.waitFor(() => expect(channels).toHaveLength(1));
    const heldBack = new PublishError('channel-closed', 'held back', { countsAsAttempt: false });
    lane.failQueuedWhere((m) => m.orderingScope === 'a', heldBack);
    await expect(sent[0]).resolves.toEqual({ ok: false, error: heldBack });
    await expect(sent[2]).resolves.toEqual({ ok: false, error: heldBack });
    allowed = true;
    lane.pump();
    expect(written()).toEqual([batch[1]?.messageId, batch[3]?.messageId]);
  });

  it('with closeWhenIdle, closes its channel once the last message is settled', async () => {
    const { send, channel, written, lane } = setup({ closeWhenIdle: true });
    const sent = [message(), message()].map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(2));
    channel().ack(0);
    expect(channel().closedByClient).toBe(false);
    channel().ack(1);
    await Promise.all(sent);
    expect(channel().closedByClient).toBe(true);
    expect(lane.hasChannel).toBe(false);
  });

  it('gives up a channel whose oldest message waits past the confirm timeout, unless the broker blocks', async () => {
    vi.useFakeTimers();
    try {
      let blocked = true;
      const { send, channel, written, closes } = setup({
        confirmTimeout: { ms: 1000, blocked: () => blocked },
      });
      const sent = send(message());
      await vi.waitFor(() => expect(written()).toHaveLength(1));
      // A memory alarm: waiting is expected, however long.
      await vi.advanceTimersByTimeAsync(5000);
      expect(channel().closedByClient).toBe(false);

      blocked = false;
      await vi.advanceTimersByTimeAsync(1000);
      const error = failure(await sent);
      expect(error).toMatchObject({ kind: 'connection-lost', countsAsAttempt: false });
      expect(error.message).toContain('no broker confirm within 1000 ms');
      expect(channel().closedByClient).toBe(true);
      // Settled already: nothing is handed to the publisher on the close.
      expect(closes).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('tells onSettled of each message and its result as it is settled', async () => {
    const seen: [string, boolean][] = [];
    const { send, channel, written } = setup({
      onSettled: (m, result) => seen.push([m.messageId, result.ok]),
    });
    const batch = [message(), message()];
    const sent = batch.map(send);
    await vi.waitFor(() => expect(written()).toHaveLength(2));
    channel().nack(1);
    channel().ack(0);
    await Promise.all(sent);
    expect(seen).toEqual([
      [batch[1]?.messageId, false],
      [batch[0]?.messageId, true],
    ]);
  });
});
