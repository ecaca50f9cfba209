/**
 * A latch the relay sleeps on between passes. Anything may ring it (the
 * sequence watcher, a NOTIFY, a flag change); a ring while nobody waits is
 * remembered, so a hint is never lost between a pass and the next wait. A
 * ring is only a hint: the claim decides what there is to do.
 *
 * It also tells whether the relay is waiting: hints matter only then. While
 * the relay works (its claims come back full, or its batches in flight are
 * at the limit) it claims again by itself, so the sequence watcher does not
 * poll; it starts again when the relay next waits (`onWait`).
 */

/** Wakes the relay early; a ring before a wait makes that wait return at once. */
export class WakeSignal {
  private rung = false;
  private waiters = new Set<() => void>();
  private waitListeners = new Set<() => void>();

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

  /** Whether someone is waiting now (and no ring is pending). */
  waiting(): boolean {
    return this.waiters.size > 0;
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
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(wake);
    });
    for (const listener of this.waitListeners) listener();
    return waited;
  }
}
