/**
 * A relay's liveness in PostgreSQL: a session-level advisory lock, keyed by
 * the relay's id, held on a connection of its own for as long as the relay
 * lives. PostgreSQL releases it the moment that session ends — the process
 * was killed, or its connection was cut — and a claim then treats the relay's
 * tenant leases as expired (sql/claim.sql, `open_tenants`), so its tenants fail
 * over in about a claim, not after `OUTBOX_LEASE`.
 *
 * Fencing: a relay claims nothing unless it holds its lock (checked by the
 * claim itself, in SQL), and publishes nothing while it knows the lock lost.
 * A heartbeat on the lock's connection notices a loss within
 * `heartbeatMs`; then the relay reconnects, with backoff, and takes the lock
 * again before it claims.
 */
import type pg from 'pg';
import { Backoff, SPREAD_JITTER } from '../backoff.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { holdLiveness } from '../outbox/leases.js';
import type { OutboxStore } from '../outbox/outbox-store.js';

/** Options of {@link RelayLiveness}. */
export interface RelayLivenessOptions {
  /** The outbox; the lock's connection comes from its pool. */
  store: OutboxStore;
  relayId: string;
  logger: Logger;
  /** How often the lock's connection is checked (a `select 1`). */
  heartbeatMs?: number;
}

const DEFAULT_HEARTBEAT_MS = 1000;
/** Between attempts to take the lock: 100 ms doubling to 5 s, jittered (relays restart together). */
const RETRY = { firstMs: 100, maxMs: 5000, jitter: SPREAD_JITTER } as const;

/** Holds the relay's liveness lock; see the module comment. */
export class RelayLiveness {
  private client: pg.PoolClient | undefined;
  private acquiring: Promise<boolean> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private nextTryAt = 0;
  private readonly retry = new Backoff(RETRY);
  private stopped = false;
  private lostLogged = false;

  constructor(private readonly options: RelayLivenessOptions) {}

  /** Whether the lock is held, as far as this process knows. */
  held(): boolean {
    return this.client !== undefined;
  }

  /**
   * Takes the lock if it is not held (at most one attempt per backoff
   * period); resolves whether it is held.
   */
  ensure(): Promise<boolean> {
    if (this.client) return Promise.resolve(true);
    if (this.stopped || Date.now() < this.nextTryAt) return Promise.resolve(false);
    this.acquiring ??= this.acquire().finally(() => {
      this.acquiring = undefined;
    });
    return this.acquiring;
  }

  /** Gives the lock back (the connection is closed, so PostgreSQL drops it at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.acquiring;
    this.drop(undefined);
  }

  private async acquire(): Promise<boolean> {
    const { store, relayId, logger } = this.options;
    let client: pg.PoolClient | undefined;
    try {
      client = await store.pool.connect();
      const candidate = client;
      candidate.on('error', (error: Error) => this.lost(candidate, error));
      if (!(await holdLiveness(store, candidate, relayId))) {
        throw new Error(`another live session holds the liveness lock of relay ${relayId}`);
      }
      if (this.stopped) {
        candidate.release(true);
        return false;
      }
      this.client = candidate;
      this.retry.reset();
      if (this.lostLogged) logger.info('liveness lock held again; claiming resumes', { relayId });
      this.lostLogged = false;
      this.startHeartbeat(candidate);
      return true;
    } catch (error) {
      client?.release(true);
      this.backOff(error);
      return false;
    }
  }

  private startHeartbeat(client: pg.PoolClient): void {
    const every = this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.heartbeat = setInterval(() => {
      client
        // query_timeout is pg's (missing from @types/pg's QueryConfig).
        .query({ text: 'select 1', query_timeout: every * 2 } as pg.QueryConfig)
        .catch((error: unknown) => this.lost(client, error));
    }, every);
    this.heartbeat.unref();
  }

  private lost(client: pg.PoolClient, error: unknown): void {
    if (this.client !== client) return;
    if (!this.lostLogged) {
      this.options.logger.warn(
        'liveness lock lost: claiming and publishing stop until it is held again',
        { relayId: this.options.relayId, error: describeError(error) },
      );
      this.lostLogged = true;
    }
    this.drop(error);
  }

  private drop(error: unknown): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const client = this.client;
    this.client = undefined;
    // Destroyed, never returned to the pool: a pooled session would keep the lock.
    client?.release(error instanceof Error ? error : true);
  }

  private backOff(error: unknown): void {
    const delay = this.retry.next();
    this.nextTryAt = Date.now() + delay;
    if (!this.lostLogged) {
      this.options.logger.warn('cannot take the liveness lock; claiming waits', {
        relayId: this.options.relayId,
        error: describeError(error),
        retryInMs: Math.round(delay),
      });
      this.lostLogged = true;
    }
  }
}
