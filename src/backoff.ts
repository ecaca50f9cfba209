/**
 * The one backoff every retrying loop uses: the delay doubles with each
 * failure from `firstMs` up to `maxMs`, then is multiplied by a random factor
 * drawn from the policy's jitter range, and starts over after a success.
 *
 * Jitter matters where many processes retry against one shared server (a
 * database or broker that restarted): without it they all come back in the
 * same instant, every time. The cap applies before the jitter, so a delay can
 * exceed `maxMs` by the jitter's upper factor, never more.
 *
 * Pure: no timers, no clock. A loop asks for the next delay and waits it out
 * its own way (a timer, a wake signal, a "not before" time), so the wait stays
 * interruptible by that loop's shutdown.
 */

/** How a loop's delays grow. */
export interface BackoffPolicy {
  /** The delay after the first failure, before jitter. */
  readonly firstMs: number;
  /** The delay stops doubling at this value (before jitter). */
  readonly maxMs: number;
  /** The delay is multiplied by a factor drawn uniformly from [low, high); {@link NO_JITTER} for none. */
  readonly jitter: readonly [low: number, high: number];
}

/** No jitter: every delay is exactly the doubled one. */
export const NO_JITTER: BackoffPolicy['jitter'] = [1, 1];
/** Half to one and a half times the delay: the same mean, spread over its whole width. */
export const SPREAD_JITTER: BackoffPolicy['jitter'] = [0.5, 1.5];
/** Half to the whole delay: never longer than the doubled one. */
export const SHORTEN_JITTER: BackoffPolicy['jitter'] = [0.5, 1];

/** A source of uniform numbers in [0, 1), like Math.random; tests inject a fixed one. */
export type RandomSource = () => number;

/** The delay after failure number `failure` (1 for the first), jitter included. */
export function backoffDelay(
  policy: BackoffPolicy,
  failure: number,
  random: RandomSource = Math.random,
): number {
  const [low, high] = policy.jitter;
  const doublings = Math.max(0, failure - 1);
  // Past ~1000 doublings 2 ** n is Infinity; min() still gives the cap.
  const base = Math.min(policy.maxMs, policy.firstMs * 2 ** doublings);
  return low === high ? base * low : base * (low + random() * (high - low));
}

/** A loop's failures so far, and the delay each asks for; see the module comment. */
export class Backoff {
  private count = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: RandomSource = Math.random,
  ) {}

  /** Counts a failure and returns how long to wait before the next try. */
  next(): number {
    this.count += 1;
    return backoffDelay(this.policy, this.count, this.random);
  }

  /** A success: the next failure waits `firstMs` again. */
  reset(): void {
    this.count = 0;
  }

  /** Failures since the last reset (a loop logs the first, and its recovery). */
  get failures(): number {
    return this.count;
  }
}
