/**
 * The one shape of the relay's background services: the lease sweep, the
 * retention clean-up, the sequence watcher, the backlog monitor and the
 * NOTIFY listener. Each separates its schedule (`start`, `stop`) from one pass
 * of its work (`runOnce`), so the runtime starts and stops them as a list and
 * tests drive a pass directly, without timers.
 *
 * Invariants every service keeps:
 * - `start()` schedules the work in the background and never rejects for a
 *   failure the service retries by itself (it logs it, and tries again on its
 *   schedule or after its backoff). Starting twice does nothing.
 * - `stop()` ends the schedule at once: no pass begins after the call. It
 *   resolves once the pass in flight (if any) has ended, so the pool can be
 *   closed after it. It is safe before `start()` and twice. (The listener
 *   uses no pool: a connection attempt in flight is not waited for, and closes
 *   its own connection when it ends.)
 * - `runOnce()` does one pass now, outside the schedule, and resolves with
 *   what it did; it needs no `start()`.
 */

/** A background service of the relay process; see the module comment. */
export interface BackgroundService<Pass = unknown> {
  /** Schedules the work; resolves once it is scheduled (the listener: once its first connection attempt ended). */
  start(): Promise<void>;
  /** Ends the schedule at once; resolves when the pass in flight has ended. */
  stop(): Promise<void>;
  /** One pass now, and what it did. */
  runOnce(): Promise<Pass>;
}

/**
 * A pass run every `intervalMs` (an unref'd timer, so it never keeps the
 * process alive), never two at once: a tick while the last pass still runs
 * is skipped. The schedule of the services that run on a fixed period (the
 * lease sweeper, the retention cleaner, the backlog monitor).
 */
export class PeriodicPass {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly intervalMs: number,
  ) {}

  /** Starts the ticks (and a pass now, if `runNow`); does nothing if started. */
  start(options: { runNow: boolean }): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    if (options.runNow) this.tick();
  }

  /** Ends the ticks at once; resolves when the pass in flight has ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private tick(): void {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
  }
}
