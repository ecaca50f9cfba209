/**
 * Refreshes the backlog gauges (pending, oldest age, held, dead, top-N
 * tenants) from PostgreSQL every interval. One bounded statement per
 * interval; a failure keeps the last values (their age shows in
 * `stats_refreshed_timestamp_seconds`) and is logged once until it recovers.
 */
import type pg from 'pg';
import type { Logger } from '../log/logger.js';
import { type OutboxStatements, readBacklogStats } from '../outbox/queries.js';
import type { RelayMetrics } from './prometheus-metrics.js';

/** How often to read, how many tenants to label, and who is paused. */
export interface BacklogMonitorOptions {
  intervalMs: number;
  topTenants: number;
  /** The tenants paused right now: their pending rows count as held. */
  pausedTenants: () => readonly string[];
  logger: Logger;
}

/** Sets the backlog gauges of a {@link RelayMetrics} from PostgreSQL, periodically. */
export class BacklogMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failing = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly statements: OutboxStatements,
    private readonly metrics: RelayMetrics,
    private readonly options: BacklogMonitorOptions,
  ) {}

  /** Reads the backlog now, then every interval. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.options.intervalMs);
    this.timer.unref();
    void this.refresh();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One read; concurrent calls share it. */
  refresh(): Promise<void> {
    this.running ??= this.read().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async read(): Promise<void> {
    try {
      const stats = await readBacklogStats(this.pool, this.statements, {
        topTenants: this.options.topTenants,
        pausedTenants: this.options.pausedTenants(),
        // Never let one read outlast the interval, nor hold up a shutdown for long.
        timeoutMs: Math.min(this.options.intervalMs, 5000),
      });
      this.metrics.setBacklog(stats);
      if (this.failing) this.options.logger.info('backlog metrics readable again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.options.logger.warn('cannot read the backlog metrics; keeping the last values', {
          error,
        });
      }
      this.failing = true;
    }
  }
}
