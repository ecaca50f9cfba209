/**
 * LISTENs on the outbox's NOTIFY channel on a dedicated connection and calls
 * back on every notification. Writers send NOTIFY only when they opt in; a
 * notification is a hint to look now. A lost connection is re-established with
 * backoff, and LISTEN issued again.
 */
import pg from 'pg';
import { Backoff, SPREAD_JITTER } from '../backoff.js';
import type { Logger } from '../log/logger.js';

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

/** A LISTEN connection that reconnects by itself until stopped. */
export class NotifyListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private readonly reconnect = new Backoff(RECONNECT);
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NotifyListenerOptions) {}

  /** Connects and LISTENs; a failure is retried in the background, never thrown. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
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
        return;
      }
      this.client = client;
      if (this.reconnect.failures > 0) this.options.logger.info('LISTEN connection restored');
      this.reconnect.reset();
      // Rows may have been committed while we were not listening.
      this.options.onNotify();
    } catch (error) {
      this.lost(client, error as Error);
    }
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== undefined && this.client !== client) return;
    this.client = undefined;
    client.removeAllListeners('end');
    client.end().catch(() => undefined);
    if (this.stopped || this.retryTimer) return;
    const delay = this.reconnect.next();
    this.options.logger.warn('LISTEN connection lost; reconnecting', {
      error,
      retryInMs: Math.round(delay),
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect();
    }, delay);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
    }
  }
}
