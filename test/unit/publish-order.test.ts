/**
 * The publish order: batches hand their messages to the publisher in the
 * order they took their turns, whatever order their payloads arrive in, and a
 * batch that fails still lets the next one go.
 */
import { describe, expect, it } from 'vitest';
import { PublishOrder, type PublishTurn } from '../../src/relay/publish-order.js';

/** Whether `promise` has resolved, once every pending callback has run. */
async function isResolved(promise: Promise<void>): Promise<boolean> {
  let resolved = false;
  void promise.then(() => {
    resolved = true;
  });
  await new Promise<void>((resolve) => setImmediate(resolve));
  return resolved;
}

/** A batch: waits for its turn, records that it handed over, lets the next go. */
async function handOver(turn: PublishTurn, name: string, log: string[]): Promise<void> {
  try {
    await turn.ready;
    log.push(name);
  } finally {
    turn.done();
  }
}

describe('the publish order', () => {
  it('lets the first turn go at once', async () => {
    const order = new PublishOrder();
    expect(await isResolved(order.takeTurn().ready)).toBe(true);
  });

  it('holds a turn until the one taken before it is done, and no longer', async () => {
    const order = new PublishOrder();
    const first = order.takeTurn();
    const second = order.takeTurn();
    const third = order.takeTurn();
    expect(await isResolved(second.ready)).toBe(false);
    first.done();
    expect(await isResolved(second.ready)).toBe(true);
    expect(await isResolved(third.ready)).toBe(false);
    second.done();
    expect(await isResolved(third.ready)).toBe(true);
  });

  it('hands over in turn order even when later batches are ready first', async () => {
    const order = new PublishOrder();
    const log: string[] = [];
    const turns = ['a', 'b', 'c', 'd'].map((name) => ({ name, turn: order.takeTurn() }));
    // Payloads arrive in reverse: the last batch starts first.
    const batches = [...turns].reverse().map(({ name, turn }) => handOver(turn, name, log));
    await Promise.all(batches);
    expect(log).toEqual(['a', 'b', 'c', 'd']);
  });

  it('lets the next turn go when a batch fails before handing over', async () => {
    const order = new PublishOrder();
    const failing = order.takeTurn();
    const next = order.takeTurn();
    const failed = (async () => {
      try {
        await failing.ready;
        throw new Error('cannot fetch payloads');
      } finally {
        failing.done();
      }
    })();
    await expect(failed).rejects.toThrow('cannot fetch payloads');
    expect(await isResolved(next.ready)).toBe(true);
  });

  it('keeps a turn waiting for earlier ones when the turn between is done early', async () => {
    // The middle batch failed to fetch its payloads, before its own turn came.
    const order = new PublishOrder();
    const first = order.takeTurn();
    const middle = order.takeTurn();
    const last = order.takeTurn();
    middle.done();
    expect(await isResolved(last.ready)).toBe(false);
    first.done();
    expect(await isResolved(last.ready)).toBe(true);
  });
});
