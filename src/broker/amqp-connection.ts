/**
 * The AMQP publisher's one connection to RabbitMQ: opened on demand (the
 * heartbeat in its URL, its name in the broker's connection list, its socket
 * writes batched), reconnected in the background with exponential backoff and
 * jitter after a loss, and watched for the broker's flow control
 * (blocked/unblocked) and for the broker error it closes with.
 */
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { Backoff, SPREAD_JITTER } from '../backoff.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';
import { BATCHED_SOCKET_OPTIONS, batchSocketWrites } from './batched-writes.js';

/** Options of {@link AmqpConnection}. */
export interface AmqpConnectionOptions {
  url: string;
  heartbeatMs: number;
  connectTimeoutMs: number;
  /** Shown in the broker's connection list. */
  connectionName: string;
  logger: Logger;
  /** The connection closed with a broker error, after every channel on it closed. */
  closedWithFault(fault: Error): void;
}

function withHeartbeat(url: string, heartbeatMs: number): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has('heartbeat')) {
    parsed.searchParams.set('heartbeat', String(Math.max(1, Math.round(heartbeatMs / 1000))));
  }
  return parsed.toString();
}

/**
 * Between connection attempts: 100 ms doubling to 30 s, times 0.5–1.5, since
 * every relay reconnects at once when the shared broker comes back.
 */
const RECONNECT = { firstMs: 100, maxMs: 30_000, jitter: SPREAD_JITTER } as const;

/** A server error code on a connection 'error': the broker closed the connection (not the network). */
function serverErrorCode(error: Error & { code?: unknown }): number | undefined {
  return typeof error.code === 'number' ? error.code : undefined;
}

/** One amqplib connection, opened on demand and again after a loss until closed. */
export class AmqpConnection {
  private connection: ChannelModel | undefined;
  private connecting: Promise<ChannelModel> | undefined;
  private closing = false;
  private blockedBy: string | undefined;
  /** The broker error the connection is closing with, between 'error' and 'close'. */
  private fault: (Error & { code: number }) | undefined;
  private readonly reconnect = new Backoff(RECONNECT);
  private nextConnectAt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AmqpConnectionOptions) {}

  /** Whether a connection is open right now. */
  get isOpen(): boolean {
    return this.connection !== undefined;
  }

  /** Why the broker blocks publishing (a memory or disk alarm), while it does. */
  get blocked(): string | undefined {
    return this.blockedBy;
  }

  /** Whether close() (or stopReconnecting()) was called. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** The broker error the connection is closing with: set between its 'error' and its 'close'. */
  get closingFault(): Error | undefined {
    return this.fault;
  }

  /** The open connection, or a new one; rejects while a reconnect waits out its backoff. */
  get(): Promise<ChannelModel> {
    if (this.connection) return Promise.resolve(this.connection);
    if (this.closing) return Promise.reject(new Error('publisher is closed'));
    if (!this.connecting) {
      if (Date.now() < this.nextConnectAt) {
        return Promise.reject(
          new Error(`broker unreachable; next attempt in ${this.nextConnectAt - Date.now()}ms`),
        );
      }
      this.connecting = this.open().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  /** A new confirm channel on the connection (connecting first if needed). */
  async openConfirmChannel(): Promise<ConfirmChannel> {
    const connection = await this.get();
    return connection.createConfirmChannel();
  }

  /** Stops connecting again; an open connection stays open until close(). */
  stopReconnecting(): void {
    this.closing = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
  }

  /** Closes the connection for good. */
  async close(): Promise<void> {
    this.stopReconnecting();
    const connection = this.connection;
    this.connection = undefined;
    if (connection) await connection.close().catch(() => undefined);
  }

  /** Keeps trying to connect, with exponential backoff and jitter, until connected or closed. */
  private reconnectInBackground(): void {
    if (this.reconnectTimer || this.closing) return;
    const delay = Math.max(0, this.nextConnectAt - Date.now());
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.connection || this.closing) return;
      this.get().catch(() => this.reconnectInBackground());
    }, delay);
    this.reconnectTimer.unref();
  }

  private async open(): Promise<ChannelModel> {
    const { logger } = this.options;
    try {
      const connection = await amqp.connect(
        withHeartbeat(this.options.url, this.options.heartbeatMs),
        {
          ...BATCHED_SOCKET_OPTIONS,
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
        if (code !== undefined) this.fault = Object.assign(error, { code });
      });
      connection.on('close', () => {
        if (this.connection === connection) this.connection = undefined;
        const fault = this.fault;
        this.fault = undefined;
        if (fault) this.options.closedWithFault(fault);
        this.blockedBy = undefined;
        if (!this.closing) {
          logger.warn('broker connection closed; reconnecting');
          this.reconnectInBackground();
        }
      });
      connection.on('blocked', (reason: string) => {
        this.blockedBy = reason || 'blocked';
        logger.warn('broker blocked publishing', { reason });
      });
      connection.on('unblocked', () => {
        this.blockedBy = undefined;
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
