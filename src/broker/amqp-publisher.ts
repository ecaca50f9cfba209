/**
 * The RabbitMQ adapter of the {@link Publisher} port: one long-lived
 * connection and a small fixed number of confirm channels ("lanes"). A
 * message's lane is chosen by its tenant and ordering scope, so one key always
 * goes through one channel and keeps its order. Only this directory imports
 * amqplib.
 *
 * The pieces: amqp-connection.ts (the connection and its reconnects),
 * confirm-lane.ts (a channel, its queue and confirm window), close-culprits.ts
 * (which lost message made the broker close), ordering-scopes.ts (scopes held
 * back or isolated after a failure), publishable.ts (the pre-send check) and
 * publish-failures.ts (each failure as a typed error).
 */
import { randomUUID } from 'node:crypto';
import { describeError, OutboxError, type PublishError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';
import type {
  OutgoingMessage,
  Publisher,
  PublisherStatus,
  PublishResult,
} from '../relay/publisher.js';
import { AmqpConnection } from './amqp-connection.js';
import { CloseCulprits } from './close-culprits.js';
import { ConfirmLane, type LaneHooks } from './confirm-lane.js';
import { OrderingScopes, scopeOf } from './ordering-scopes.js';
import { heldBack, heldBehind, publisherClosed, unpublishable } from './publish-failures.js';
import { RABBITMQ_DEFAULT_MAX_MESSAGE_BYTES, unpublishableReason } from './publishable.js';

/** Options of {@link AmqpPublisher}. */
export interface AmqpPublisherOptions {
  url: string;
  /** Confirm channels on the connection. */
  channels: number;
  /** Unconfirmed messages allowed across all channels. */
  maxInFlight: number;
  /** Largest body sent; a larger message fails at once, permanently (default: RabbitMQ's 128 MiB). */
  maxMessageBytes?: number;
  /**
   * Check each message against what AMQP and RabbitMQ refuse before sending
   * it (default true). Off only in tests of the broker's own refusals.
   */
  precheck?: boolean;
  heartbeatMs: number;
  /** Longest wait for a broker ack (while not blocked) before a channel is given up. */
  confirmTimeoutMs: number;
  connectTimeoutMs: number;
  /** Shown in the broker's connection list. */
  connectionName: string;
  logger: Logger;
  /** Observes each message's fate the moment it is known (latency measurement, metrics). */
  onSettled?: (message: OutgoingMessage, result: PublishResult) => void;
}

/** FNV-1a: stable, cheap spreading of ordering scopes over lanes. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Publishes with confirms over one connection and a fixed set of channels.
 * When the broker closes a channel or the connection under several messages,
 * their scopes are isolated and sent again one at a time on the isolation
 * lane until the culprit is known (close-culprits.ts).
 */
export class AmqpPublisher implements Publisher {
  private readonly connection: AmqpConnection;
  private readonly lanes: ConfirmLane[];
  /** Sends suspects one at a time, so a broker close has one message to blame. */
  private readonly isolation: ConfirmLane;
  /** The lanes and the isolation lane. */
  private readonly allLanes: readonly ConfirmLane[];
  private readonly scopes = new OrderingScopes();
  private readonly culprits: CloseCulprits;
  private readonly maxMessageBytes: number;

  private constructor(private readonly options: AmqpPublisherOptions) {
    this.maxMessageBytes = options.maxMessageBytes ?? RABBITMQ_DEFAULT_MAX_MESSAGE_BYTES;
    this.connection = new AmqpConnection({
      url: options.url,
      heartbeatMs: options.heartbeatMs,
      connectTimeoutMs: options.connectTimeoutMs,
      connectionName: options.connectionName,
      logger: options.logger,
      closedWithFault: (fault) => this.culprits.connectionClosedWithFault(fault),
    });
    this.culprits = new CloseCulprits({
      connection: this.connection,
      scopes: this.scopes,
      logger: options.logger,
      holdBack: (scopes, because) => this.holdBack(scopes, because),
    });
    const window = Math.max(1, Math.ceil(options.maxInFlight / options.channels));
    const hooks: LaneHooks = {
      mayWrite: (lane, exclusive) => this.mayWrite(lane, exclusive),
      channelClosed: (lane, lost, channelError) =>
        this.culprits.channelClosed(lost, channelError, lane === this.isolation),
      settled: (lane) => this.laneSettled(lane),
    };
    const lane = (laneWindow: number, closeWhenIdle: boolean) =>
      new ConfirmLane({
        window: laneWindow,
        open: () => this.connection.openConfirmChannel(),
        logger: options.logger,
        confirmTimeout: {
          ms: options.confirmTimeoutMs,
          blocked: () => this.connection.blocked !== undefined,
        },
        hooks,
        closeWhenIdle,
        onSettled: (message, result) => {
          if (!result.ok && !result.error.permanent) this.failed(message, result.error);
          options.onSettled?.(message, result);
        },
      });
    this.lanes = Array.from({ length: options.channels }, () => lane(window, false));
    this.isolation = lane(1, true);
    this.allLanes = [...this.lanes, this.isolation];
  }

  /**
   * Connects once up front. Throws BROKER_UNAVAILABLE with one clear line when
   * the broker cannot be reached; later losses are reconnected on demand.
   */
  static async connect(options: AmqpPublisherOptions): Promise<AmqpPublisher> {
    const publisher = new AmqpPublisher(options);
    try {
      await publisher.connection.get();
    } catch (error) {
      throw new OutboxError(
        'BROKER_UNAVAILABLE',
        `cannot connect to RabbitMQ at ${redactUrl(options.url)}: ${describeError(error) || 'connection failed'}`,
        { cause: error },
      );
    }
    return publisher;
  }

  isReady(): boolean {
    return this.connection.isOpen && this.connection.blocked === undefined;
  }

  status(): PublisherStatus {
    return {
      connected: this.connection.isOpen,
      blocked: this.connection.blocked,
      channels: this.allLanes.filter((lane) => lane.hasChannel).length,
    };
  }

  publish(messages: readonly OutgoingMessage[]): Promise<PublishResult[]> {
    if (this.connection.isClosing) {
      const error = publisherClosed();
      return Promise.resolve(messages.map(() => ({ ok: false, error })));
    }
    // Enqueue synchronously, in order: this is what keeps one key's order.
    return Promise.all(messages.map((m) => this.publishOne(m)));
  }

  private publishOne(m: OutgoingMessage): Promise<PublishResult> {
    const reason =
      this.options.precheck === false ? undefined : unpublishableReason(m, this.maxMessageBytes);
    if (reason !== undefined)
      return Promise.resolve({ ok: false, error: unpublishable(m, reason) });
    const scope = scopeOf(m);
    if (this.scopes.isHeldBack(m, scope)) {
      const error = heldBack(m, 'an earlier message of its ordering key failed');
      return Promise.resolve({ ok: false, error });
    }
    const kind = this.scopes.isolation(scope);
    if (kind === undefined) {
      const lane = this.lanes[hash(scope) % this.lanes.length] as ConfirmLane;
      return lane.enqueue(m);
    }
    this.scopes.sendingAlone(scope);
    return this.isolation.enqueue(m, kind === 'connection').then((result) => {
      this.scopes.sentAlone(scope, result);
      return result;
    });
  }

  /**
   * A message failed: the messages of its scope queued behind it are held
   * back, and after a collateral failure its scope's later messages too
   * (OrderingScopes.failed).
   */
  private failed(message: OutgoingMessage, error: PublishError): void {
    this.scopes.failed(message, error);
    this.holdBack(
      new Set([scopeOf(message)]),
      `message ${message.messageId} of the same ordering key failed`,
    );
  }

  /** Lanes hold their writes while a suspect of a connection error is being sent alone. */
  private mayWrite(lane: ConfirmLane, exclusive: boolean): boolean {
    if (lane !== this.isolation) return !this.isolation.headExclusive;
    return !exclusive || this.lanes.every((other) => other.unconfirmedCount === 0);
  }

  private laneSettled(lane: ConfirmLane): void {
    // Deferred: a lane settles from inside its own pump.
    if (lane === this.isolation) {
      if (!this.isolation.headExclusive) queueMicrotask(() => this.pumpLanes());
    } else if (lane.unconfirmedCount === 0 && this.isolation.headExclusive) {
      queueMicrotask(() => this.isolation.pump());
    }
  }

  private pumpLanes(): void {
    for (const lane of this.lanes) lane.pump();
  }

  /**
   * Fails, without counting an attempt, the messages still queued behind
   * `scopes`' failed messages: sent now, they would overtake the retries of
   * their ordering key. They are claimed again after them.
   */
  private holdBack(scopes: ReadonlySet<string>, because: string): void {
    const error = heldBehind(because);
    for (const lane of this.allLanes) {
      lane.failQueuedWhere((m) => scopes.has(scopeOf(m)), error);
    }
  }

  async close(timeoutMs: number): Promise<void> {
    this.connection.stopReconnecting();
    const deadline = Date.now() + timeoutMs;
    const lanes = this.allLanes;
    while (lanes.some((lane) => lane.size > 0) && Date.now() < deadline && this.connection.isOpen) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const error = publisherClosed();
    for (const lane of lanes) lane.failQueued(error);
    await this.connection.close();
  }
}

/** A connection name unique to this process, for the broker's connection list. */
export function connectionName(relayId: string = randomUUID()): string {
  return `outbox-relay ${relayId}`;
}
