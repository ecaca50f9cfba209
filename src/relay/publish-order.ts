/**
 * Keeps batches reaching the publisher in the order they were claimed.
 *
 * Batches overlap: while one waits for confirms, the next is claimed and
 * asks the tenant gate. Rows of one ordering key must still reach the broker in id order,
 * and a later claim may hold later rows of a key an earlier one holds. So each
 * batch takes a turn right after its claim (synchronously, before any other
 * claim can return) and hands its messages to the publisher only once the
 * turn before it is done. `Publisher.publish()` enqueues synchronously, so a
 * turn is done as soon as the call returns, not when the confirms come back.
 *
 * This is only the order of hand-offs; how many batches may be in flight is
 * `BatchesInFlight`'s job.
 */

/** A batch's place in the publish order: wait for `ready`, hand over, then call `done`. */
export interface PublishTurn {
  /** Resolves once every earlier turn is done. */
  ready: Promise<void>;
  /** Lets the next turn go; call it exactly once, in a `finally`, whatever happened. */
  done: () => void;
}

/** A chain of turns, one per batch, in the order they were taken. */
export class PublishOrder {
  /** Resolves when the most recently taken turn, and every one before it, is done. */
  private last: Promise<void> = Promise.resolve();

  /** Takes the next turn: it is ready once every turn taken before it is done. */
  takeTurn(): PublishTurn {
    const ready = this.last;
    let done: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => {
      done = resolve;
    });
    // A batch that ends before its turn comes (one that fails while it waits)
    // calls done() early; the next turn must still wait for the earlier ones.
    this.last = ready.then(() => ended);
    return { ready, done };
  }
}
