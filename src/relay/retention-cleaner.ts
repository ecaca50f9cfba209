/**
 * When published rows are kept for a retention period, deletes the expired
 * ones in small batches, so clean-up never holds long locks or bloats WAL in
 * one burst.
 */
import type { Logger } from '../log/logger.js';
import { deleteExpired } from '../outbox/operator-queries.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import { type BackgroundService, PeriodicPass } from './background-service.js';

const BATCH = 1000;

/**
 * Periodically deletes published rows older than the retention period. A
 * failed pass is logged, and the next interval tries again.
 */
export class RetentionCleaner implements BackgroundService<number> {
  private readonly schedule: PeriodicPass;

  constructor(
    private readonly store: OutboxStore,
    private readonly retentionMs: number,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.schedule = new PeriodicPass(() => this.runOnce(), intervalMs);
  }

  /** Starts the periodic clean-up (first pass after one interval); does nothing when retention is 0 (rows are deleted on publish). */
  async start(): Promise<void> {
    if (this.retentionMs > 0) this.schedule.start({ runNow: false });
  }

  /** Deletes expired rows in batches until none are left; returns how many. */
  async runOnce(): Promise<number> {
    try {
      const total = await deleteExpired(this.store, this.retentionMs, BATCH);
      if (total > 0) this.logger.debug('deleted expired published rows', { count: total });
      return total;
    } catch (error) {
      this.logger.warn('retention clean-up failed; will try again', { error });
      return 0;
    }
  }

  /** Ends the schedule; waits for a clean-up in flight. */
  async stop(): Promise<void> {
    await this.schedule.stop();
  }
}
