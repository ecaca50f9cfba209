/**
 * Notices new outbox rows without any help from writers: it reads the id
 * sequence's last_value, which costs the writers nothing (no NOTIFY, no lock
 * they wait on), and rings the wake signal when it moves.
 *
 * How often it reads follows the traffic. Right after the sequence moved it
 * reads every `intervalMs` (OUTBOX_WAKE_INTERVAL, 2 ms); once nothing has
 * moved for {@link FAST_FOR_MS} the gap doubles with each quiet read, up to
 * {@link IDLE_INTERVAL_MS}, so an idle relay reads five times a second instead
 * of five hundred, and the first event after a silence waits at most that
 * long for its hint (docs/benchmarks.md has the measurements that set it).
 *
 * It does not read while the relay has worked for {@link BUSY_FOR_MS} without
 * waiting on the signal: its claims come back full (or its batches in flight
 * are at the limit), so it claims again by itself and hints would only cost
 * it. Between the short claims of light traffic it does read, so a row that
 * commits during a claim is rung for before the relay next waits. When the
 * relay waits again, the watcher reads at once (rows may have arrived
 * meanwhile) and is fast again if anything moved.
 *
 * The sequence moves when a row is inserted, before that row commits, so a
 * single wake-up can come too early. After each change the watcher therefore
 * rings again at doubling gaps (one interval, two, four … up to about a
 * second); after that the relay's full poll is the fallback. A ring is a hint,
 * never the source of truth.
 */
import { Backoff, type BackoffPolicy, NO_JITTER } from '../backoff.js';
import type { Logger } from '../log/logger.js';
import type { BackgroundService } from './background-service.js';
import type { WakeSignal } from './wake-signal.js';

const FOLLOW_UP_LIMIT_MS = 1000;
/** How long reads stay at the fast interval after the sequence last moved. */
export const FAST_FOR_MS = 100;
/** The longest gap between reads of an idle relay; bounds the first event's wait after a silence. */
export const IDLE_INTERVAL_MS = 200;
/** How long the relay works without waiting before reads stop until it waits again. */
export const BUSY_FOR_MS = 50;

/** Tuning beyond the fast interval (tests and benchmarks; the defaults are the constants above). */
export interface SequenceWatcherOptions {
  fastForMs?: number;
  idleIntervalMs?: number;
}

/**
 * After a failed read: the idle interval, every time. A read is one cheap
 * statement, the relay's full poll covers the outage meanwhile, and a longer
 * wait would only delay the first hint once the database is back.
 */
function readRetry(idleIntervalMs: number): BackoffPolicy {
  return { firstMs: idleIntervalMs, maxMs: idleIntervalMs, jitter: NO_JITTER };
}

/** Reads a cheap "has anything been inserted?" value and rings the wake signal on change. */
export class SequenceWatcher implements BackgroundService<boolean> {
  private last: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  /** Set while no read is scheduled because the relay was busy (see BUSY_FOR_MS). */
  private suspended = false;
  /** The scheduled read in flight, which stop() waits for. */
  private reading: Promise<void> | undefined;
  private gap = 0;
  private changedAt = 0;
  private followUpAt = 0;
  private followUpGap = 0;
  private readonly retry: Backoff;
  private reads = 0;
  private unsubscribe: (() => void) | undefined;
  private readonly fastForMs: number;
  private readonly idleIntervalMs: number;

  constructor(
    private readonly read: () => Promise<string>,
    private readonly signal: WakeSignal,
    private readonly intervalMs: number,
    private readonly logger: Logger,
    options: SequenceWatcherOptions = {},
  ) {
    this.fastForMs = options.fastForMs ?? FAST_FOR_MS;
    this.idleIntervalMs = Math.max(intervalMs, options.idleIntervalMs ?? IDLE_INTERVAL_MS);
    this.retry = new Backoff(readRetry(this.idleIntervalMs));
  }

  /** Starts watching; does nothing when the interval is 0. */
  async start(): Promise<void> {
    if (this.intervalMs <= 0 || !this.stopped) return;
    this.stopped = false;
    this.suspended = false;
    this.gap = this.intervalMs;
    this.changedAt = Date.now();
    this.unsubscribe = this.signal.onWait(() => this.resume());
    this.schedule(this.intervalMs);
  }

  /** Ends the reads; waits for a read in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.reading;
  }

  /**
   * One read: rings on a change, or for a follow-up that is due, and sets the
   * next gap. Returns whether it rang. A failed read is logged once until one
   * succeeds; the gap is then the retry's (the idle interval).
   */
  async runOnce(): Promise<boolean> {
    try {
      const value = await this.read();
      this.reads += 1;
      if (this.retry.failures > 0) {
        this.retry.reset();
        this.logger.info('sequence watcher recovered');
      }
      return this.observe(value, Date.now());
    } catch (error) {
      if (this.retry.failures === 0) {
        this.logger.warn(
          'sequence watcher cannot read the outbox sequence; relying on the full poll',
          { error },
        );
      }
      this.gap = this.retry.next();
      return false;
    }
  }

  /** Reads of the sequence so far (tests and benchmarks count them). */
  readCount(): number {
    return this.reads;
  }

  /** Whether it reads at the idle pace: backed off, with no follow-up ring pending. */
  idle(): boolean {
    return this.gap === this.idleIntervalMs && this.followUpGap === 0;
  }

  /**
   * The relay waits again: read now if reads were suspended while it worked
   * (called from inside `wait()`, so the read starts before the relay sleeps).
   */
  private resume(): void {
    if (this.stopped || !this.suspended) return;
    this.suspended = false;
    void this.tick();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (this.stopped || this.reading) return;
    if (this.signal.busyForMs() > BUSY_FOR_MS) {
      // The relay keeps claiming by itself; read again when it waits.
      this.suspended = true;
      return;
    }
    this.suspended = false;
    this.reading = this.runOnce().then(() => undefined);
    try {
      await this.reading;
    } finally {
      this.reading = undefined;
      this.scheduleNext(Date.now());
    }
  }

  /** Rings on a change (and for the follow-ups after one), and sets the next gap; returns whether it rang. */
  private observe(value: string, now: number): boolean {
    // The first read rings too: rows may have arrived between the relay's
    // first claim and this read, and there is no earlier value to compare.
    if (value !== this.last) {
      this.last = value;
      this.changedAt = now;
      this.gap = this.intervalMs;
      this.followUpGap = this.intervalMs;
      this.followUpAt = now + this.followUpGap;
      this.signal.ring();
      return true;
    }
    let rang = false;
    if (this.followUpGap > 0 && now >= this.followUpAt) {
      this.signal.ring();
      rang = true;
      this.followUpGap *= 2;
      this.followUpAt = now + this.followUpGap;
      if (this.followUpGap > FOLLOW_UP_LIMIT_MS) this.followUpGap = 0;
    }
    if (now - this.changedAt >= this.fastForMs) {
      this.gap = Math.min(this.gap * 2, this.idleIntervalMs);
    }
    return rang;
  }

  private scheduleNext(now: number): void {
    if (this.stopped || this.suspended) return;
    const followUpIn = this.followUpGap > 0 ? Math.max(0, this.followUpAt - now) : this.gap;
    this.schedule(Math.min(this.gap, followUpIn));
  }
}
