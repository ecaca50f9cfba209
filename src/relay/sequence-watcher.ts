/**
 * Notices new outbox rows without any help from writers: every few
 * milliseconds it reads the id sequence's last_value, which costs the writers
 * nothing (no NOTIFY, no lock they wait on).
 *
 * The sequence moves when a row is inserted, before that row commits, so a
 * single wake-up can come too early. After each change the watcher therefore
 * rings again at doubling gaps (one interval, two, four … up to about a
 * second); after that the relay's full poll is the fallback. A ring is a hint,
 * never the source of truth.
 */
import type { Logger } from '../log/logger.js';
import type { WakeSignal } from './wake-signal.js';

const FOLLOW_UP_LIMIT_MS = 1000;

/** Polls a cheap "has anything been inserted?" value and rings the wake signal on change. */
export class SequenceWatcher {
  private last: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private followUpAt = 0;
  private followUpGap = 0;
  private failing = false;

  constructor(
    private readonly read: () => Promise<string>,
    private readonly signal: WakeSignal,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  /** Starts polling; does nothing when the interval is 0. */
  start(): void {
    if (this.intervalMs <= 0 || !this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      const value = await this.read();
      if (this.failing) {
        this.failing = false;
        this.logger.info('sequence watcher recovered');
      }
      const now = Date.now();
      // The first read rings too: rows may have arrived between the relay's
      // first claim and this read, and there is no earlier value to compare.
      if (value !== this.last) {
        this.followUpGap = this.intervalMs;
        this.followUpAt = now + this.followUpGap;
        this.signal.ring();
      } else if (this.followUpGap > 0 && now >= this.followUpAt) {
        this.signal.ring();
        this.followUpGap *= 2;
        this.followUpAt = now + this.followUpGap;
        if (this.followUpGap > FOLLOW_UP_LIMIT_MS) this.followUpGap = 0;
      }
      this.last = value;
    } catch (error) {
      if (!this.failing) {
        this.failing = true;
        this.logger.warn(
          'sequence watcher cannot read the outbox sequence; relying on the full poll',
          { error },
        );
      }
    } finally {
      this.schedule();
    }
  }
}
