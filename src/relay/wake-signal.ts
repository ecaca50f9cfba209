/**
 * A latch the relay sleeps on between passes. Anything may ring it (the
 * sequence watcher, a NOTIFY, a flag change); a ring while nobody waits is
 * remembered, so a hint is never lost between a pass and the next wait. A
 * ring is only a hint: the claim decides what there is to do.
 *
 * It also tells how long the relay has worked without waiting (`busyForMs`):
 * a relay whose claims come back full, or whose batches in flight are at the
 * limit, claims again by itself, so the sequence watcher stops polling then,
 * and starts again when the relay next waits (`onWait`).
 */

/** Wakes the relay early; a ring before a wait makes that wait return at once. */
export class WakeSignal {
  private rung = false;
  private waiters = new Set<() => void>();
  private waitListeners = new Set<() => void>();
  /** When a wait last blocked and ended (performance.now()); 0 before the first. */
  private wokenAt = 0;

  /** Wakes every waiter, or the next one if none waits. */
  ring(): void {
    if (this.waiters.size === 0) {
      this.rung = true;
      return;
    }
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * 0 while someone waits; otherwise how long since the last wait ended (ms),
   * that is how long the relay has been working without waiting. A wait that
   * returns at once on an earlier ring does not count as waiting.
   */
  busyForMs(now = performance.now()): number {
    return this.waiters.size > 0 ? 0 : now - this.wokenAt;
  }

  /** Calls `listener` each time a wait begins to block; returns the unsubscribe. */
  onWait(listener: () => void): () => void {
    this.waitListeners.add(listener);
    return () => this.waitListeners.delete(listener);
  }

  /** Resolves `true` when rung, `false` after `timeoutMs`. */
  wait(timeoutMs: number): Promise<boolean> {
    if (this.rung) {
      this.rung = false;
      return Promise.resolve(true);
    }
    const waited = new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wokenAt = performance.now();
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        this.wokenAt = performance.now();
        resolve(false);
      }, timeoutMs);
      this.waiters.add(wake);
    });
    for (const listener of this.waitListeners) listener();
    return waited;
  }
}
