/**
 * The timer that notices a confirm that never comes. While a lane has
 * unconfirmed messages it checks, a few times per confirm timeout, how long
 * the oldest one has waited; past the timeout, unless the broker is blocking
 * publishing (a memory or disk alarm, when waiting is expected), it tells the
 * lane, which gives up its channel. It stops by itself once nothing is
 * unconfirmed, and never keeps the process alive.
 */

/** How a lane notices a confirm that never comes. */
export interface ConfirmTimeout {
  /** Longest wait for a broker ack before the channel is given up. */
  ms: number;
  /** True while the broker blocks publishing (a memory or disk alarm): waiting is then expected. */
  blocked: () => boolean;
}

/** The lane's oldest unconfirmed message, as far as the watchdog cares. */
export interface OldestUnconfirmed {
  /** When it was written to the channel (ms, `performance.now()`). */
  readonly sentAt?: number | undefined;
}

/** Calls `expired` when the lane's oldest unconfirmed message has waited past the timeout. */
export class ConfirmWatchdog {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly timeout: ConfirmTimeout,
    private readonly oldest: () => OldestUnconfirmed | undefined,
    private readonly expired: () => void,
  ) {}

  /** Starts checking, unless already checking (call on each write). */
  arm(): void {
    const timeout = this.timeout;
    if (this.timer) return;
    this.timer = setInterval(
      () => {
        const oldest = this.oldest();
        if (!oldest) {
          clearInterval(this.timer);
          this.timer = undefined;
          return;
        }
        if (timeout.blocked() || oldest.sentAt === undefined) return;
        if (performance.now() - oldest.sentAt < timeout.ms) return;
        this.expired();
      },
      Math.max(50, Math.min(1000, timeout.ms / 4)),
    );
    this.timer.unref();
  }
}
