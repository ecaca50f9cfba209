/**
 * Deletes tenant leases that ended long ago, any relay's: such a lease means
 * nothing (a claim takes its tenant as if it had none), and deleting it keeps
 * `tenant_leases`, which claims read whole, down to the tenants served
 * lately. Once per lease period, as the relay's loop did before it became a
 * service of its own: a sweep is cleanup, so it neither holds up a claim nor
 * waits for the broker.
 */
import type { Logger } from '../log/logger.js';
import { type BackgroundService, PeriodicPass } from './background-service.js';

/** Sweeps the expired tenant leases now, then once per interval; see the module comment. */
export class LeaseSweeper implements BackgroundService<number> {
  private readonly schedule: PeriodicPass;

  constructor(
    /** Deletes the expired leases and returns how many (the outbox SQL's sweep). */
    private readonly sweep: () => Promise<number>,
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    this.schedule = new PeriodicPass(() => this.runOnce(), intervalMs);
  }

  /** Sweeps now, then every interval. */
  async start(): Promise<void> {
    this.schedule.start({ runNow: true });
  }

  /** Ends the schedule; waits for a sweep in flight. */
  async stop(): Promise<void> {
    await this.schedule.stop();
  }

  /** Sweeps once; returns how many leases it deleted (0 after a failure, which the next period retries). */
  async runOnce(): Promise<number> {
    try {
      const swept = await this.sweep();
      if (swept > 0) this.logger.debug('swept expired tenant leases', { count: swept });
      return swept;
    } catch (error) {
      this.logger.warn('cannot sweep expired tenant leases; will try again', { error });
      return 0;
    }
  }
}
