/**
 * LISTENs on the outbox's NOTIFY channel on a dedicated connection and calls
 * back on every notification. Writers send NOTIFY only when they opt in; a
 * notification is a hint to look now. A lost connection is re-established with
 * backoff, and LISTEN issued again.
 */
import pg from 'pg';
import { Backoff, SPREAD_JITTER } from '../backoff.js';
import type { Logger } from '../log/logger.js';
import type { BackgroundService } from '../relay/background-service.js';

/** Options of {@link NotifyListener}. */
export interface NotifyListenerOptions {
  url: string;
  /** The LISTEN statement (OutboxStatements.listen). */
  listen: string;
  connectTimeoutMs: number;
  onNotify: () => void;
  logger: Logger;
}

/**
 * Between reconnects: 100 ms doubling to 30 s, jittered, since every relay's
 * listener loses its connection together when PostgreSQL restarts.
 */
const RECONNECT = { firstMs: 100, maxMs: 30_000, jitter: SPREAD_JITTER } as const;

/** A LISTEN connection that, once started, reconnects by itself until stopped. */
export class NotifyListener implements BackgroundService<boolean> {
  private client: pg.Client | undefined;
  /** Between start() and stop(): only then is a lost connection made again. */
  private started = false;
  private stopped = false;
  private readonly reconnect = new Backoff(RECONNECT);
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NotifyListenerOptions) {}

  /** Connects and LISTENs; a failure is retried in the background, never thrown. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.stopped = false;
    await this.runOnce();
  }

  /**
   * Connects and LISTENs, unless it listens already; returns whether it
   * listens now. A failure is retried with backoff only once started.
   */
  async runOnce(): Promise<boolean> {
    if (this.client) return true;
    if (this.stopped) return false;
    const client = new pg.Client({
      connectionString: this.options.url,
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      application_name: 'outbox-relay listen',
      keepAlive: true,
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client, new Error('connection ended')));
    client.on('notification', () => this.options.onNotify());
    try {
      await client.connect();
      await client.query(this.options.listen);
      if (this.stopped) {
        await client.end().catch(() => undefined);
        return false;
      }
      this.client = client;
      if (this.reconnect.failures > 0) this.options.logger.info('LISTEN connection restored');
      this.reconnect.reset();
      // Rows may have been committed while we were not listening.
      this.options.onNotify();
      return true;
    } catch (error) {
      this.lost(client, error as Error);
      return false;
    }
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== undefined && this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (this.stopped || !this.started || this.retryTimer) return;
    const delay = this.reconnect.next();
    this.options.logger.warn('LISTEN connection lost; reconnecting', {
      error,
      retryInMs: Math.round(delay),
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.runOnce();
    }, delay);
    this.retryTimer.unref();
  }

  /** Ends the retries and closes the connection (an attempt in flight closes its own). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.started = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
