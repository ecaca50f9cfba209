/**
 * One confirm channel and the queue in front of it. Messages leave the queue
 * in the order they were enqueued, at most `window` unconfirmed at a time;
 * when `publish()` returns false the lane waits for 'drain' before writing
 * more. A message is published only on a broker ack that was not preceded by
 * a basic.return for it (mandatory, unroutable). If the channel closes, the
 * lane hands its unconfirmed messages to the publisher, which alone can tell
 * the message that caused the close from the ones closed under it; the next
 * message opens a new channel.
 */
import type { ConfirmChannel, Message } from 'amqplib';
import type { PublishError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { OutgoingMessage, PublishResult } from '../relay/publisher.js';
import { type ConfirmTimeout, ConfirmWatchdog } from './confirm-watchdog.js';
import {
  cannotOpenChannel,
  nacked,
  noConfirm,
  publishThrew,
  unroutable,
} from './publish-failures.js';

interface Pending {
  message: OutgoingMessage;
  /** Written only while nothing else is unconfirmed on the whole connection. */
  exclusive: boolean;
  resolve: (result: PublishResult) => void;
  returned?: string;
  settled: boolean;
  /** When it was written to the channel (ms, monotonic). */
  sentAt?: number;
}

/** Opens a confirm channel; rejects when the broker cannot be reached. */
export type ChannelOpener = () => Promise<ConfirmChannel>;

/** An error the broker closed a channel with (channel.close carries a reply code). */
export type ChannelCloseError = Error & { code?: number };

/** A message that was unconfirmed when its channel closed, for the publisher to settle. */
export interface LostMessage {
  message: OutgoingMessage;
  /** Set when the broker returned it (mandatory, unroutable) before the close. */
  returned: string | undefined;
  settle(result: PublishResult): void;
}

/** What a lane asks of, and tells, the publisher it belongs to. */
export interface LaneHooks {
  /** May the lane write its next message (`exclusive`: it must be alone on the connection)? */
  mayWrite(lane: ConfirmLane, exclusive: boolean): boolean;
  /**
   * The channel closed with `lost` unconfirmed; `channelError` is set when the
   * broker closed this channel itself. The publisher settles every message.
   */
  channelClosed(
    lane: ConfirmLane,
    lost: readonly LostMessage[],
    channelError: ChannelCloseError | undefined,
  ): void;
  /** One of the lane's messages was settled. */
  settled(lane: ConfirmLane): void;
}

/** Options of {@link ConfirmLane}. */
export interface ConfirmLaneOptions {
  /** Unconfirmed messages allowed on the channel. */
  window: number;
  open: ChannelOpener;
  logger: Logger;
  confirmTimeout: ConfirmTimeout;
  hooks: LaneHooks;
  /** Close the channel whenever the lane empties (a lane used only now and then). */
  closeWhenIdle?: boolean;
  onSettled?: ((message: OutgoingMessage, result: PublishResult) => void) | undefined;
}

/** A confirm channel with an ordered queue and a sliding window of unconfirmed messages. */
export class ConfirmLane {
  private readonly queue: Pending[] = [];
  private readonly unconfirmed: Pending[] = [];
  private channel: ConfirmChannel | undefined;
  private opening = false;
  private waitingForDrain = false;
  private channelError: ChannelCloseError | undefined;
  private readonly watchdog: ConfirmWatchdog;

  constructor(private readonly options: ConfirmLaneOptions) {
    this.watchdog = new ConfirmWatchdog(
      options.confirmTimeout,
      () => this.unconfirmed[0],
      () => this.confirmTimedOut(),
    );
  }

  /**
   * Gives up the channel when its oldest unconfirmed message has waited longer
   * than the confirm timeout while the broker is not blocking: the link is
   * dead or the broker stuck. The messages fail without counting an attempt
   * and are claimed again; a later ack on the old channel no longer counts.
   */
  private confirmTimedOut(): void {
    const timeoutMs = this.options.confirmTimeout.ms;
    const channel = this.channel;
    this.options.logger.warn('no broker confirm within the confirm timeout; dropping the channel', {
      unconfirmed: this.unconfirmed.length,
      timeoutMs,
    });
    this.channel = undefined;
    this.channelError = undefined;
    const error = noConfirm(timeoutMs);
    for (const item of this.unconfirmed.splice(0)) this.settle(item, { ok: false, error });
    this.waitingForDrain = false;
    channel?.close().catch(() => undefined);
    this.pump();
  }

  /** Whether the lane has an open channel right now. */
  get hasChannel(): boolean {
    return this.channel !== undefined;
  }

  /** Messages queued or unconfirmed on this lane. */
  get size(): number {
    return this.queue.length + this.unconfirmed.length;
  }

  /** Messages written and not confirmed yet. */
  get unconfirmedCount(): number {
    return this.unconfirmed.length;
  }

  /** Whether the lane's oldest message (written or next to write) must be alone on the connection. */
  get headExclusive(): boolean {
    return (this.unconfirmed[0] ?? this.queue[0])?.exclusive === true;
  }

  /** Queues a message; resolves when it is confirmed or has failed. Never rejects. */
  enqueue(message: OutgoingMessage, exclusive = false): Promise<PublishResult> {
    return new Promise((resolve) => {
      this.queue.push({ message, exclusive, resolve, settled: false });
      this.pump();
    });
  }

  /** Fails everything queued (not yet written) with `error`. */
  failQueued(error: PublishError): void {
    for (const item of this.queue.splice(0)) this.settle(item, { ok: false, error });
  }

  /** Fails the queued (not yet written) messages that `match` picks, keeping the others in order. */
  failQueuedWhere(match: (message: OutgoingMessage) => boolean, error: PublishError): void {
    const failed: Pending[] = [];
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const item = this.queue[i] as Pending;
      if (match(item.message)) failed.push(...this.queue.splice(i, 1));
    }
    for (const item of failed.reverse()) this.settle(item, { ok: false, error });
  }

  /** Writes what the window, the socket and the publisher allow. */
  pump(): void {
    if (this.queue.length === 0) return;
    if (!this.channel) {
      void this.openChannel();
      return;
    }
    const channel = this.channel;
    const { window, hooks } = this.options;
    while (
      this.queue.length > 0 &&
      this.unconfirmed.length < window &&
      !this.waitingForDrain &&
      this.channel === channel &&
      hooks.mayWrite(this, (this.queue[0] as Pending).exclusive)
    ) {
      const item = this.queue.shift() as Pending;
      const m = item.message;
      item.sentAt = performance.now();
      this.unconfirmed.push(item);
      this.watchdog.arm();
      let writable: boolean;
      try {
        writable = channel.publish(
          m.exchange,
          m.routingKey,
          m.content,
          {
            persistent: true,
            mandatory: true,
            messageId: m.messageId,
            contentType: m.contentType,
            ...(m.type === undefined ? {} : { type: m.type }),
            timestamp: m.timestamp,
            headers: m.headers,
          },
          (error: unknown) => this.confirmed(item, error),
        );
      } catch (error) {
        // amqplib encodes the whole message before writing any of it, so a
        // throw leaves the channel as it was (publishThrew says whose fault it is).
        this.unconfirmed.splice(this.unconfirmed.indexOf(item), 1);
        this.settle(item, { ok: false, error: publishThrew(m, error) });
        continue;
      }
      if (!writable) {
        this.waitingForDrain = true;
        channel.once('drain', () => {
          this.waitingForDrain = false;
          this.pump();
        });
      }
    }
  }

  private async openChannel(): Promise<void> {
    if (this.opening) return;
    this.opening = true;
    try {
      const channel = await this.options.open();
      this.channelError = undefined;
      channel.on('error', (error: ChannelCloseError) => {
        this.channelError = error;
        this.options.logger.warn('channel error', { error });
      });
      channel.on('return', (returned: Message) => this.returned(returned));
      channel.on('close', () => this.closed(channel));
      this.channel = channel;
      this.waitingForDrain = false;
    } catch (error) {
      this.failQueued(cannotOpenChannel(error));
    } finally {
      this.opening = false;
    }
    this.pump();
  }

  private returned(message: Message): void {
    const id = message.properties.messageId as string | undefined;
    const item = this.unconfirmed.find(
      (p) => p.message.messageId === id && p.returned === undefined,
    );
    // basic.return carries replyCode/replyText, which amqplib's MessageFields type omits.
    const fields = message.fields as unknown as { replyCode?: number; replyText?: string };
    if (item) item.returned = `${fields.replyCode ?? 312} ${fields.replyText ?? 'NO_ROUTE'}`;
  }

  private confirmed(item: Pending, error: unknown): void {
    // amqplib fails every unconfirmed callback with 'channel closed' just
    // before the channel's 'close' event: that event settles them, knowing why.
    if (item.settled || (error instanceof Error && error.message === 'channel closed')) return;
    // Confirms arrive in publish order, so the item is almost always the
    // oldest: shift() is O(1) where splice(0, 1) moves the whole window
    // (about 1.3 µs a message at a window of 500).
    if (this.unconfirmed[0] === item) this.unconfirmed.shift();
    else {
      const at = this.unconfirmed.indexOf(item);
      if (at >= 0) this.unconfirmed.splice(at, 1);
    }
    if (error) {
      this.settle(item, { ok: false, error: nacked(item.message, error) });
    } else if (item.returned !== undefined) {
      this.settle(item, { ok: false, error: unroutable(item.message, item.returned) });
    } else {
      this.settle(item, { ok: true });
    }
    this.pump();
  }

  private closed(channel: ConfirmChannel): void {
    // A channel the watchdog (or closeWhenIdle) already gave up has nothing of ours left.
    if (this.channel !== channel) return;
    this.channel = undefined;
    this.waitingForDrain = false;
    const channelError = this.channelError;
    this.channelError = undefined;
    const lost = this.unconfirmed.splice(0).filter((item) => !item.settled);
    if (lost.length > 0) {
      this.options.hooks.channelClosed(
        this,
        lost.map((item) => ({
          message: item.message,
          returned: item.returned,
          settle: (result: PublishResult) => this.settle(item, result),
        })),
        channelError,
      );
    }
    this.pump();
  }

  private settle(item: Pending, result: PublishResult): void {
    if (item.settled) return;
    item.settled = true;
    this.options.onSettled?.(item.message, result);
    item.resolve(result);
    this.options.hooks.settled(this);
    if (this.options.closeWhenIdle && this.size === 0 && this.channel) {
      const channel = this.channel;
      this.channel = undefined;
      channel.close().catch(() => undefined);
    }
  }
}
