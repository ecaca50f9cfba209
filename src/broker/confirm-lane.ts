/**
 * One confirm channel and the queue in front of it. Messages leave the queue
 * in the order they were enqueued, at most `window` unconfirmed at a time;
 * when `publish()` returns false the lane waits for 'drain' before writing
 * more. A message is published only on a broker ack that was not preceded by
 * a basic.return for it (mandatory, unroutable). If the channel closes, every
 * unconfirmed message fails and the next message opens a new channel.
 */
import type { ConfirmChannel, Message } from 'amqplib';
import { describeError, PublishError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { OutgoingMessage, PublishResult } from '../relay/publisher.js';

interface Pending {
  message: OutgoingMessage;
  resolve: (result: PublishResult) => void;
  returned?: string;
  settled: boolean;
  /** When it was written to the channel (ms, monotonic). */
  sentAt?: number;
}

/** How a lane notices a confirm that never comes. */
export interface ConfirmTimeout {
  /** Longest wait for a broker ack before the channel is given up. */
  ms: number;
  /** True while the broker blocks publishing (a memory or disk alarm): waiting is then expected. */
  blocked: () => boolean;
}

/** Opens a confirm channel; rejects when the broker cannot be reached. */
export type ChannelOpener = () => Promise<ConfirmChannel>;

/** A confirm channel with an ordered queue and a sliding window of unconfirmed messages. */
export class ConfirmLane {
  private readonly queue: Pending[] = [];
  private readonly unconfirmed: Pending[] = [];
  private channel: ConfirmChannel | undefined;
  private opening = false;
  private waitingForDrain = false;
  private channelError: (Error & { code?: number }) | undefined;

  constructor(
    private readonly window: number,
    private readonly open: ChannelOpener,
    private readonly logger: Logger,
    private readonly confirmTimeout: ConfirmTimeout,
    private readonly onSettled?: (message: OutgoingMessage, result: PublishResult) => void,
  ) {}

  private watchdog: NodeJS.Timeout | undefined;

  /**
   * Gives up the channel when its oldest unconfirmed message has waited longer
   * than the confirm timeout while the broker is not blocking: the link is
   * dead or the broker stuck. The messages fail without counting an attempt
   * and are claimed again; a later ack on the old channel no longer counts.
   */
  private armWatchdog(): void {
    const timeout = this.confirmTimeout;
    if (this.watchdog) return;
    this.watchdog = setInterval(
      () => {
        const oldest = this.unconfirmed[0];
        if (!oldest) {
          clearInterval(this.watchdog);
          this.watchdog = undefined;
          return;
        }
        if (timeout.blocked() || oldest.sentAt === undefined) return;
        if (performance.now() - oldest.sentAt < timeout.ms) return;
        const channel = this.channel;
        this.logger.warn('no broker confirm within the confirm timeout; dropping the channel', {
          unconfirmed: this.unconfirmed.length,
          timeoutMs: timeout.ms,
        });
        this.channel = undefined;
        this.channelError = undefined;
        const error = new PublishError(
          'connection-lost',
          `no broker confirm within ${timeout.ms} ms`,
          {
            countsAsAttempt: false,
          },
        );
        for (const item of this.unconfirmed.splice(0)) this.settle(item, { ok: false, error });
        this.waitingForDrain = false;
        channel?.close().catch(() => undefined);
        this.pump();
      },
      Math.max(50, Math.min(1000, timeout.ms / 4)),
    );
    this.watchdog.unref();
  }

  /** Whether the lane has an open channel right now. */
  get hasChannel(): boolean {
    return this.channel !== undefined;
  }

  /** Messages queued or unconfirmed on this lane. */
  get size(): number {
    return this.queue.length + this.unconfirmed.length;
  }

  /** Queues a message; resolves when it is confirmed or has failed. Never rejects. */
  enqueue(message: OutgoingMessage): Promise<PublishResult> {
    return new Promise((resolve) => {
      this.queue.push({ message, resolve, settled: false });
      this.pump();
    });
  }

  /** Fails everything queued (not yet written) with `error`. */
  failQueued(error: PublishError): void {
    for (const item of this.queue.splice(0)) this.settle(item, { ok: false, error });
  }

  private pump(): void {
    if (this.queue.length === 0) return;
    if (!this.channel) {
      void this.openChannel();
      return;
    }
    const channel = this.channel;
    while (
      this.queue.length > 0 &&
      this.unconfirmed.length < this.window &&
      !this.waitingForDrain
    ) {
      const item = this.queue.shift() as Pending;
      const m = item.message;
      item.sentAt = performance.now();
      this.unconfirmed.push(item);
      this.armWatchdog();
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
        // Encoding errors (e.g. a header table too large) are this message's fault alone.
        this.unconfirmed.splice(this.unconfirmed.indexOf(item), 1);
        this.settle(item, {
          ok: false,
          error: new PublishError(
            'rejected',
            `cannot publish message ${m.messageId}: ${describeError(error)}`,
            {
              cause: error,
            },
          ),
        });
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
      const channel = await this.open();
      this.channelError = undefined;
      channel.on('error', (error: Error & { code?: number }) => {
        this.channelError = error;
        this.logger.warn('channel error', { error });
      });
      channel.on('return', (returned: Message) => this.returned(returned));
      channel.on('close', () => this.closed(channel));
      this.channel = channel;
      this.waitingForDrain = false;
    } catch (error) {
      this.failQueued(
        new PublishError('connection-lost', `cannot open a channel: ${describeError(error)}`, {
          cause: error,
          countsAsAttempt: false,
        }),
      );
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
    const at = this.unconfirmed.indexOf(item);
    if (at >= 0) this.unconfirmed.splice(at, 1);
    const m = item.message;
    if (error) {
      if (!item.settled) this.settle(item, this.failureOnClose(item, error));
    } else if (item.returned !== undefined) {
      this.settle(item, {
        ok: false,
        error: new PublishError(
          'unroutable',
          `cannot publish message ${m.messageId}: returned by the broker (${item.returned}): no queue is bound to exchange '${m.exchange}' with routing key '${m.routingKey}'`,
        ),
      });
    } else {
      this.settle(item, { ok: true });
    }
    this.pump();
  }

  private closed(channel: ConfirmChannel): void {
    // A channel the watchdog already gave up has nothing of ours left.
    if (this.channel !== channel) return;
    this.channel = undefined;
    this.waitingForDrain = false;
    for (const item of this.unconfirmed.splice(0)) {
      this.settle(
        item,
        this.failureOnClose(item, this.channelError ?? new Error('channel closed')),
      );
    }
    this.pump();
  }

  /**
   * Sorts a channel failure into this message's fault or collateral damage.
   * A 404 names the missing exchange: messages for it count an attempt, the
   * others on the channel are retried at once. Any other channel error counts
   * for every message on it, so a poison message backs off instead of looping.
   */
  private failureOnClose(item: Pending, error: unknown): PublishResult {
    const m = item.message;
    const channelError = this.channelError;
    if (channelError?.code === 404 && /no exchange/.test(channelError.message)) {
      const culprit = channelError.message.includes(`'${m.exchange}'`);
      return {
        ok: false,
        error: new PublishError(
          culprit ? 'rejected' : 'channel-closed',
          culprit
            ? `cannot publish message ${m.messageId}: exchange '${m.exchange}' does not exist`
            : `cannot publish message ${m.messageId}: channel closed by another message's error`,
          { cause: channelError, countsAsAttempt: culprit },
        ),
      };
    }
    if (channelError) {
      return {
        ok: false,
        error: new PublishError(
          'rejected',
          `cannot publish message ${m.messageId}: ${describeError(channelError)}`,
          {
            cause: channelError,
          },
        ),
      };
    }
    const nacked = describeError(error).includes('nack');
    return {
      ok: false,
      error: new PublishError(
        nacked ? 'nacked' : 'connection-lost',
        `cannot publish message ${m.messageId}: ${nacked ? 'nacked by the broker' : describeError(error)}`,
        { cause: error, countsAsAttempt: nacked },
      ),
    };
  }

  private settle(item: Pending, result: PublishResult): void {
    if (item.settled) return;
    item.settled = true;
    this.onSettled?.(item.message, result);
    item.resolve(result);
  }
}
