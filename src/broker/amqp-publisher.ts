/**
 * The RabbitMQ adapter of the {@link Publisher} port: one long-lived
 * connection and a small fixed number of confirm channels ("lanes"). A
 * message's lane is chosen by its tenant and ordering scope, so one key always
 * goes through one channel and keeps its order. Only this directory imports
 * amqplib.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { redactUrl } from '../config.js';
import { describeError, OutboxError, PublishError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type {
  OutgoingMessage,
  Publisher,
  PublisherStatus,
  PublishResult,
} from '../relay/publisher.js';
import { ConfirmLane } from './confirm-lane.js';

/** Options of {@link AmqpPublisher}. */
export interface AmqpPublisherOptions {
  url: string;
  /** Confirm channels on the connection. */
  channels: number;
  /** Unconfirmed messages allowed across all channels. */
  maxInFlight: number;
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

/** Publishes with confirms over one connection and a fixed set of channels. */
export class AmqpPublisher implements Publisher {
  private connection: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private readonly lanes: ConfirmLane[];
  private closing = false;
  private blocked: string | undefined;
  private reconnectDelayMs = 100;
  private nextConnectAt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: AmqpPublisherOptions) {
    const window = Math.max(1, Math.ceil(options.maxInFlight / options.channels));
    this.lanes = Array.from(
      { length: options.channels },
      () =>
        new ConfirmLane(
          window,
          () => this.openChannel(),
          options.logger,
          {
            ms: options.confirmTimeoutMs,
            blocked: () => this.blocked !== undefined,
          },
          options.onSettled,
        ),
    );
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
      channels: this.lanes.filter((lane) => lane.hasChannel).length,
    };
  }

  publish(messages: readonly OutgoingMessage[]): Promise<PublishResult[]> {
    if (this.closing) {
      const error = new PublishError('connection-lost', 'publisher is closed', {
        countsAsAttempt: false,
      });
      return Promise.resolve(messages.map(() => ({ ok: false, error })));
    }
    // Enqueue synchronously, in order: this is what keeps one key's order.
    return Promise.all(
      messages.map((m) => {
        const lane = this.lanes[
          hash(`${m.tenantId}\u0000${m.orderingScope}`) % this.lanes.length
        ] as ConfirmLane;
        return lane.enqueue(m);
      }),
    );
  }

  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const deadline = Date.now() + timeoutMs;
    while (this.lanes.some((lane) => lane.size > 0) && Date.now() < deadline && this.connection) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const error = new PublishError('connection-lost', 'publisher is closed', {
      countsAsAttempt: false,
    });
    for (const lane of this.lanes) lane.failQueued(error);
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
      connection.on('error', (error: Error) => logger.warn('broker connection error', { error }));
      connection.on('close', () => {
        if (this.connection === connection) this.connection = undefined;
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
      this.reconnectDelayMs = 100;
      logger.info('connected to broker', { url: redactUrl(this.options.url) });
      return connection;
    } catch (error) {
      // Exponential backoff with jitter between connection attempts.
      const delay = this.reconnectDelayMs * (0.5 + Math.random());
      this.nextConnectAt = Date.now() + delay;
      this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 30_000);
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
