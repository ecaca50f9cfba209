/**
 * The batches the claim loop has started and that have not ended yet (claimed,
 * not yet settled), bounded by `batchesInFlight`. The loop claims only while
 * a slot is free, so the bound is never passed and no batch ever queues here;
 * the count is what the loop and `stop()` wait on.
 *
 * This bounds how many batches overlap; the order in which they reach the
 * publisher is `PublishOrder`'s job. Batches of `runOnce()` are not counted.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import { WakeSignal } from './wake-signal.js';

/** Counts and bounds batches in flight; see the module comment. */
export class BatchesInFlight {
  /** Bounds the batches in flight; its counts say how many there are. */
  private readonly limit: LimitFunction;
  /** Rung whenever a batch ends, for a loop waiting for a free slot and for stop(). */
  private readonly batchEnded = new WakeSignal();

  constructor(private readonly max: number) {
    this.limit = pLimit(max);
  }

  /** Batches started and not yet ended (running or waiting for a slot). */
  count(): number {
    return this.limit.activeCount + this.limit.pendingCount;
  }

  /** Whether every slot is taken. */
  full(): boolean {
    return this.count() >= this.max;
  }

  /** Resolves when a batch ends (true) or after `timeoutMs` (false). */
  waitForEnd(timeoutMs: number): Promise<boolean> {
    return this.batchEnded.wait(timeoutMs);
  }

  /** Runs `batch` in the background in a slot; `failed` is told if it rejects. */
  start(batch: () => Promise<unknown>, failed: (error: unknown) => void): void {
    void this.limit(batch)
      .catch(failed)
      .finally(() => this.batchEnded.ring());
  }

  /** Resolves true once no batch is in flight, false if `deadline` (epoch ms) comes first. */
  async allEnded(deadline: number): Promise<boolean> {
    while (this.count() > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.batchEnded.wait(left);
    }
    return true;
  }
}
