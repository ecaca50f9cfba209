/**
 * An in-memory adapter of the {@link Publisher} port, for tests: of the relay
 * without a broker, and of applications that want to see what the relay would
 * send. It keeps the port's contract as the AMQP adapter does (one result per
 * message, in input order, never a rejection; a message counts as published
 * only once confirmed; close waits for outstanding confirms), and passes the
 * same conformance suite (test/helpers/publisher-conformance.ts).
 *
 * Confirms come on a later turn of the event loop, as a broker's would, or
 * only when the test calls {@link MemoryPublisher.confirm} (`manualConfirms`),
 * so a test can hold messages in flight. A test can also take the "broker"
 * away ({@link MemoryPublisher.disconnect}) and give it back.
 */
import { PublishError } from '../errors.js';
import type {
  OutgoingMessage,
  Publisher,
  PublisherStatus,
  PublishResult,
} from '../relay/publisher.js';

/** What happens to one message at the broker. */
export type MemoryOutcome = 'confirmed' | 'unroutable' | 'nacked';

/** Options of {@link MemoryPublisher}. */
export interface MemoryPublisherOptions {
  /** Decides each message's fate (default: every message is confirmed). */
  outcome?: (message: OutgoingMessage) => MemoryOutcome;
  /** Confirm only when {@link MemoryPublisher.confirm} is called (default: on the next turn). */
  manualConfirms?: boolean;
}

interface InFlight {
  message: OutgoingMessage;
  resolve: (result: PublishResult) => void;
}

/** A collateral failure: the message was fine, so it is retried without counting an attempt. */
function lost(reason: string): PublishResult {
  return {
    ok: false,
    error: new PublishError('connection-lost', reason, { countsAsAttempt: false }),
  };
}

/** Publishes into an array; the messages confirmed so far are in {@link published}, in order. */
export class MemoryPublisher implements Publisher {
  /** Messages confirmed and routed, in the order they were confirmed (what a consumer gets). */
  readonly published: OutgoingMessage[] = [];
  /** Published and not yet confirmed, oldest first; confirms come in this order. */
  private readonly inFlight: InFlight[] = [];
  private readonly drained = new Set<() => void>();
  private connected = true;
  private closed = false;
  private confirmScheduled = false;

  constructor(private readonly options: MemoryPublisherOptions = {}) {}

  publish(messages: readonly OutgoingMessage[]): Promise<PublishResult[]> {
    if (this.closed) {
      return Promise.resolve(messages.map(() => lost('publisher is closed')));
    }
    if (!this.connected) {
      return Promise.resolve(messages.map(() => lost('connection to the broker lost')));
    }
    const results = messages.map(
      (message) =>
        new Promise<PublishResult>((resolve) => this.inFlight.push({ message, resolve })),
    );
    if (!this.options.manualConfirms) this.scheduleConfirms();
    return Promise.all(results);
  }

  isReady(): boolean {
    return this.connected && !this.closed;
  }

  status(): PublisherStatus {
    const connected = this.isReady();
    return { connected, blocked: undefined, channels: connected ? 1 : 0 };
  }

  /** Messages published and not yet confirmed. */
  get unconfirmedCount(): number {
    return this.inFlight.length;
  }

  /**
   * Confirms the `count` oldest unconfirmed messages (all by default), each
   * with the fate `outcome` gives it; returns how many were settled.
   */
  confirm(count = Number.POSITIVE_INFINITY): number {
    const settled = this.inFlight.splice(0, Math.min(count, this.inFlight.length));
    for (const { message, resolve } of settled) resolve(this.fate(message));
    this.notifyIfDrained();
    return settled.length;
  }

  /** Loses the connection: unconfirmed messages fail, publishing fails until {@link reconnect}. */
  disconnect(): void {
    this.connected = false;
    this.failInFlight('connection to the broker lost');
  }

  /** Gives the connection back. */
  reconnect(): void {
    this.connected = true;
  }

  /** Waits up to `timeoutMs` for outstanding confirms; what is still unconfirmed then fails. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.inFlight.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      let done: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        done = resolve;
        this.drained.add(resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      if (done) this.drained.delete(done);
    }
    this.failInFlight('publisher is closed');
  }

  private fate(message: OutgoingMessage): PublishResult {
    const outcome = this.options.outcome?.(message) ?? 'confirmed';
    if (outcome === 'nacked') {
      return {
        ok: false,
        error: new PublishError(
          'nacked',
          `cannot publish message ${message.messageId}: nacked by the broker`,
        ),
      };
    }
    if (outcome === 'unroutable') {
      return {
        ok: false,
        error: new PublishError(
          'unroutable',
          `cannot publish message ${message.messageId}: no queue is bound to exchange '${message.exchange}' with routing key '${message.routingKey}'`,
        ),
      };
    }
    this.published.push(message);
    return { ok: true };
  }

  /** Confirms on a later turn, as a broker's acks arrive after the publish call returned. */
  private scheduleConfirms(): void {
    if (this.confirmScheduled) return;
    this.confirmScheduled = true;
    setImmediate(() => {
      this.confirmScheduled = false;
      this.confirm();
    });
  }

  private failInFlight(reason: string): void {
    for (const { resolve } of this.inFlight.splice(0)) resolve(lost(reason));
    this.notifyIfDrained();
  }

  private notifyIfDrained(): void {
    if (this.inFlight.length > 0) return;
    for (const resolve of [...this.drained]) resolve();
    this.drained.clear();
  }
}
