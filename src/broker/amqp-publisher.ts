/**
 * The RabbitMQ adapter of the {@link Publisher} port: one long-lived
 * connection and a small fixed number of confirm channels ("lanes"). A
 * message's lane is chosen by its tenant and ordering scope, so one key always
 * goes through one channel and keeps its order. Only this directory imports
 * amqplib.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { Backoff, SPREAD_JITTER } from '../backoff.js';
import { describeError, OutboxError, type PublishError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';
import type {
  OutgoingMessage,
  Publisher,
  PublisherStatus,
  PublishResult,
} from '../relay/publisher.js';
import { batchSocketWrites } from './batched-writes.js';
import {
  type ChannelCloseError,
  ConfirmLane,
  type LaneHooks,
  type LostMessage,
} from './confirm-lane.js';
import {
  connectionLost,
  heldBack,
  heldBehind,
  publisherClosed,
  rejected,
  suspected,
  unpublishable,
  unroutable,
} from './publish-failures.js';
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

function withHeartbeat(url: string, heartbeatMs: number): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has('heartbeat')) {
    parsed.searchParams.set('heartbeat', String(Math.max(1, Math.round(heartbeatMs / 1000))));
  }
  return parsed.toString();
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
 * Between connection attempts: 100 ms doubling to 30 s, times 0.5–1.5, since
 * every relay reconnects at once when the shared broker comes back.
 */
const RECONNECT = { firstMs: 100, maxMs: 30_000, jitter: SPREAD_JITTER } as const;

/** AMQP reply code of a missing exchange. */
const NOT_FOUND = 404;

/** Longest a scope's later messages are held back waiting for an earlier failed one. */
const HOLD_MS = 10_000;

/** Scopes kept in isolation at most; the oldest leave first. */
const MAX_ISOLATED_SCOPES = 10_000;

/** Sets `key` as the newest entry of `map`; past MAX_ISOLATED_SCOPES the oldest goes. */
function setNewest<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_ISOLATED_SCOPES) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

function scopeOf(m: OutgoingMessage): string {
  return `${m.tenantId}\u0000${m.orderingScope}`;
}

/** A server error code on a connection 'error': the broker closed the connection (not the network). */
function serverErrorCode(error: Error & { code?: unknown }): number | undefined {
  return typeof error.code === 'number' ? error.code : undefined;
}

/**
 * Publishes with confirms over one connection and a fixed set of channels.
 *
 * A broker error that closes a channel or the connection names no message
 * (and its text is cut at 255 bytes), so the publisher finds the culprit by
 * isolation, never by matching names: when the close leaves exactly one
 * message unconfirmed on that channel (for a channel error) or on the whole
 * connection (for a connection error), that message is the culprit and counts
 * an attempt. Otherwise every unconfirmed message is a suspect: each fails
 * without counting an attempt, and its ordering scope is isolated, so its
 * messages are sent again one at a time on the isolation lane (its own
 * channel). Suspects of a connection error are sent while nothing else is
 * unconfirmed on the connection. The next close then has one message to
 * blame; a scope leaves isolation once a message of it is confirmed.
 */
export class AmqpPublisher implements Publisher {
  private connection: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private readonly lanes: ConfirmLane[];
  /** Sends suspects one at a time, so a broker close has one message to blame. */
  private readonly isolation: ConfirmLane;
  /** The lanes and the isolation lane. */
  private readonly allLanes: readonly ConfirmLane[];
  /** Isolated ordering scopes: the kind of close that made them suspect, oldest first. */
  private readonly isolated = new Map<string, 'channel' | 'connection'>();
  /** Messages of each isolated scope queued or unconfirmed on the isolation lane. */
  private readonly isolatedInFlight = new Map<string, number>();
  /** The broker error the connection is closing with, between 'error' and 'close'. */
  private connectionFault: (Error & { code: number }) | undefined;
  /** Messages left unconfirmed by channels closed under {@link connectionFault}. */
  private readonly casualties: LostMessage[] = [];
  /**
   * Ordering scopes with a message that failed collaterally and will be
   * claimed again at once: later messages of the scope are held back until
   * that one (the lowest such row id) is sent again, or for {@link HOLD_MS}
   * at most, so a retry never comes after a later message of its key.
   */
  private readonly held = new Map<string, { minId: bigint; until: number }>();
  private readonly maxMessageBytes: number;
  private closing = false;
  private blocked: string | undefined;
  private readonly reconnect = new Backoff(RECONNECT);
  private nextConnectAt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: AmqpPublisherOptions) {
    this.maxMessageBytes = options.maxMessageBytes ?? RABBITMQ_DEFAULT_MAX_MESSAGE_BYTES;
    const window = Math.max(1, Math.ceil(options.maxInFlight / options.channels));
    const hooks: LaneHooks = {
      mayWrite: (lane, exclusive) => this.mayWrite(lane, exclusive),
      channelClosed: (lane, lost, channelError) => this.channelClosed(lane, lost, channelError),
      settled: (lane) => this.laneSettled(lane),
    };
    const lane = (laneWindow: number, closeWhenIdle: boolean) =>
      new ConfirmLane({
        window: laneWindow,
        open: () => this.openChannel(),
        logger: options.logger,
        confirmTimeout: {
          ms: options.confirmTimeoutMs,
          blocked: () => this.blocked !== undefined,
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
      await publisher.getConnection();
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
    return this.connection !== undefined && this.blocked === undefined;
  }

  status(): PublisherStatus {
    return {
      connected: this.connection !== undefined,
      blocked: this.blocked,
      channels: this.allLanes.filter((lane) => lane.hasChannel).length,
    };
  }

  publish(messages: readonly OutgoingMessage[]): Promise<PublishResult[]> {
    if (this.closing) {
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
    const held = this.held.get(scope);
    if (held) {
      if (Date.now() > held.until || BigInt(m.id) <= held.minId) this.held.delete(scope);
      else {
        const error = heldBack(m, 'an earlier message of its ordering key failed');
        return Promise.resolve({ ok: false, error });
      }
    }
    const kind = this.isolated.get(scope);
    if (kind === undefined) {
      const lane = this.lanes[hash(scope) % this.lanes.length] as ConfirmLane;
      return lane.enqueue(m);
    }
    this.isolatedInFlight.set(scope, (this.isolatedInFlight.get(scope) ?? 0) + 1);
    return this.isolation.enqueue(m, kind === 'connection').then((result) => {
      const left = (this.isolatedInFlight.get(scope) ?? 1) - 1;
      if (left > 0) this.isolatedInFlight.set(scope, left);
      else this.isolatedInFlight.delete(scope);
      // Confirmed, nacked or returned: this scope closed nothing this time.
      const closedNothing =
        result.ok || result.error.kind === 'nacked' || result.error.kind === 'unroutable';
      if (closedNothing && left <= 0) this.isolated.delete(scope);
      return result;
    });
  }

  /**
   * A message failed: the messages of its scope queued behind it are held
   * back. After a collateral failure (claimed again at once) its scope's
   * later messages are held back too until it is sent again. A counted
   * failure backs off, and the claim gives none of its key's later rows
   * meanwhile; holding those would only spin.
   */
  private failed(message: OutgoingMessage, error: PublishError): void {
    const scope = scopeOf(message);
    const id = BigInt(message.id);
    const held = this.held.get(scope);
    if (!error.countsAsAttempt && (!held || id < held.minId)) {
      setNewest(this.held, scope, { minId: id, until: Date.now() + HOLD_MS });
    }
    this.holdBack(new Set([scope]), `message ${message.messageId} of the same ordering key failed`);
  }

  /** Puts `scope` in isolation (a connection fault outranks a channel fault). */
  private isolate(scope: string, kind: 'channel' | 'connection'): void {
    if (this.isolated.get(scope) === 'connection') return;
    // Bounded: the oldest scopes leave first (at worst a suspect closes a channel again).
    setNewest(this.isolated, scope, kind);
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

  private channelClosed(
    lane: ConfirmLane,
    lost: readonly LostMessage[],
    channelError: ChannelCloseError | undefined,
  ): void {
    if (channelError && typeof channelError.code === 'number') {
      const cause = `the broker closed its channel: ${describeError(channelError)}`;
      if (lane === this.isolation || lost.length === 1) this.blame(lost, 'channel', cause);
      else if (channelError.code === NOT_FOUND) void this.findMissingExchange(lost, cause);
      else this.suspect(lost, 'channel', cause);
      return;
    }
    if (this.connectionFault) {
      // Decided on the connection's 'close', once every channel has handed its messages over.
      this.casualties.push(...lost);
      return;
    }
    for (const { message, settle } of lost) settle({ ok: false, error: connectionLost(message) });
  }

  /** The connection closed with a broker error: blame its one unconfirmed message, or isolate them all. */
  private connectionClosedWithFault(fault: Error): void {
    const lost = this.casualties.splice(0);
    if (lost.length === 0) return;
    const cause = `the broker closed the connection: ${describeError(fault)}`;
    if (lost.length === 1) this.blame(lost, 'connection', cause);
    else this.suspect(lost, 'connection', cause);
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

  /**
   * A 404 closed a channel under several messages. The broker handles a
   * channel's publishes in order and stops at the first to a missing
   * exchange, so asking it which of their exchanges exist (a passive declare
   * each, on a channel of its own, in publish order) names the culprit
   * exactly: the first message to a missing exchange. The messages before it
   * were routed (or returned) and count as published, so nothing is sent
   * twice; those after it were never handled and go back to pending. If no
   * exchange is missing any more, the suspects are sent again alone.
   */
  private async findMissingExchange(lost: readonly LostMessage[], cause: string): Promise<void> {
    // Meanwhile, nothing of these keys may overtake them.
    this.holdBack(
      new Set(lost.map(({ message }) => scopeOf(message))),
      'an earlier message of the same ordering key was on a channel the broker closed',
    );
    const checked = new Map<string, boolean>();
    let culprit = -1;
    try {
      for (let i = 0; i < lost.length && culprit < 0; i++) {
        const exchange = (lost[i] as LostMessage).message.exchange;
        if (!checked.has(exchange)) checked.set(exchange, await this.exchangeExists(exchange));
        if (checked.get(exchange) === false) culprit = i;
      }
    } catch {
      culprit = -1;
    }
    if (culprit < 0) {
      this.suspect(lost, 'channel', cause);
      return;
    }
    lost.forEach((item, i) => {
      if (i < culprit) {
        item.settle(
          item.returned === undefined
            ? { ok: true }
            : { ok: false, error: unroutable(item.message, item.returned) },
        );
      } else if (i === culprit) {
        this.blame([item], 'channel', cause);
      } else {
        const because = 'it was on a channel an earlier message made the broker close';
        item.settle({ ok: false, error: heldBack(item.message, because) });
      }
    });
  }

  /** Whether `exchange` exists, by a passive declare on a throwaway channel. */
  private async exchangeExists(exchange: string): Promise<boolean> {
    if (exchange === '') return true;
    const connection = await this.getConnection();
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.checkExchange(exchange);
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === NOT_FOUND) return false;
      throw error;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** `lost` holds exactly the message that made the broker close: it counts an attempt. */
  private blame(lost: readonly LostMessage[], kind: 'channel' | 'connection', cause: string): void {
    for (const { message, settle } of lost) {
      // Settling it holds back its key's queued messages (failed()).
      this.isolate(scopeOf(message), kind);
      this.options.logger.warn('message refused by the broker', {
        messageId: message.messageId,
        tenantId: message.tenantId,
        cause,
      });
      settle({ ok: false, error: rejected(message, cause) });
    }
  }

  /** One of `lost` made the broker close: retry each alone, without counting an attempt. */
  private suspect(
    lost: readonly LostMessage[],
    kind: 'channel' | 'connection',
    cause: string,
  ): void {
    this.options.logger.warn(
      'broker closed a channel under several messages; sending them again one at a time',
      {
        suspects: lost.length,
        cause,
      },
    );
    // Settling each holds back its key's queued messages (failed()).
    for (const { message, settle } of lost) {
      this.isolate(scopeOf(message), kind);
      settle({ ok: false, error: suspected(message, cause, lost.length) });
    }
  }

  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const deadline = Date.now() + timeoutMs;
    const lanes = this.allLanes;
    while (lanes.some((lane) => lane.size > 0) && Date.now() < deadline && this.connection) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const error = publisherClosed();
    for (const lane of lanes) lane.failQueued(error);
    const connection = this.connection;
    this.connection = undefined;
    if (connection) await connection.close().catch(() => undefined);
  }

  private async openChannel(): Promise<ConfirmChannel> {
    const connection = await this.getConnection();
    return connection.createConfirmChannel();
  }

  private getConnection(): Promise<ChannelModel> {
    if (this.connection) return Promise.resolve(this.connection);
    if (this.closing) return Promise.reject(new Error('publisher is closed'));
    if (!this.connecting) {
      if (Date.now() < this.nextConnectAt) {
        return Promise.reject(
          new Error(`broker unreachable; next attempt in ${this.nextConnectAt - Date.now()}ms`),
        );
      }
      this.connecting = this.openConnection().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  /** Keeps trying to connect, with exponential backoff and jitter, until connected or closed. */
  private reconnectInBackground(): void {
    if (this.reconnectTimer || this.closing) return;
    const delay = Math.max(0, this.nextConnectAt - Date.now());
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.connection || this.closing) return;
      this.getConnection().catch(() => this.reconnectInBackground());
    }, delay);
    this.reconnectTimer.unref();
  }

  private async openConnection(): Promise<ChannelModel> {
    const { logger } = this.options;
    try {
      const connection = await amqp.connect(
        withHeartbeat(this.options.url, this.options.heartbeatMs),
        {
          timeout: this.options.connectTimeoutMs,
          clientProperties: { connection_name: this.options.connectionName },
        },
      );
      if (this.closing) {
        // close() ran while this connection was being opened: nobody will use it.
        connection.on('error', () => undefined);
        await connection.close().catch(() => undefined);
        throw new Error('publisher is closed');
      }
      if (!batchSocketWrites(connection)) {
        logger.debug('amqplib internals not as expected; socket writes stay one per message');
      }
      connection.on('error', (error: Error & { code?: unknown }) => {
        logger.warn('broker connection error', { error });
        const code = serverErrorCode(error);
        // amqplib emits 'error', then closes the channels, then emits 'close'.
        if (code !== undefined) this.connectionFault = Object.assign(error, { code });
      });
      connection.on('close', () => {
        if (this.connection === connection) this.connection = undefined;
        const fault = this.connectionFault;
        this.connectionFault = undefined;
        if (fault) this.connectionClosedWithFault(fault);
        this.blocked = undefined;
        if (!this.closing) {
          logger.warn('broker connection closed; reconnecting');
          this.reconnectInBackground();
        }
      });
      connection.on('blocked', (reason: string) => {
        this.blocked = reason || 'blocked';
        logger.warn('broker blocked publishing', { reason });
      });
      connection.on('unblocked', () => {
        this.blocked = undefined;
        logger.info('broker unblocked publishing');
      });
      this.connection = connection;
      this.reconnect.reset();
      logger.info('connected to broker', { url: redactUrl(this.options.url) });
      return connection;
    } catch (error) {
      const delay = this.reconnect.next();
      this.nextConnectAt = Date.now() + delay;
      logger.warn('cannot connect to broker', {
        error: describeError(error),
        retryInMs: Math.round(delay),
      });
      throw error;
    }
  }
}

/** A connection name unique to this process, for the broker's connection list. */
export function connectionName(relayId: string = randomUUID()): string {
  return `outbox-relay ${relayId}`;
}
