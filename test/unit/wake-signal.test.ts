/**
 * The latch the relay sleeps on, on fake timers (performance.now() included):
 * a ring wakes every waiter, a ring nobody waited for is kept for the next
 * wait, a wait that nobody rings ends at its timeout, and the signal tells how
 * long the relay has worked without waiting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WakeSignal } from '../../src/relay/wake-signal.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A wait whose outcome the test can read without awaiting it. */
function track(wait: Promise<boolean>) {
  const state: { result: boolean | undefined } = { result: undefined };
  void wait.then((rung) => {
    state.result = rung;
  });
  return state;
}

describe('the wake signal', () => {
  it('wakes every waiter with true, at once', async () => {
    const signal = new WakeSignal();
    const first = track(signal.wait(60_000));
    const second = track(signal.wait(60_000));
    signal.ring();
    await vi.advanceTimersByTimeAsync(0);
    expect(first.result).toBe(true);
    expect(second.result).toBe(true);
  });

  it('keeps a ring nobody waited for for the next wait, once', async () => {
    const signal = new WakeSignal();
    signal.ring();
    signal.ring();
    await expect(signal.wait(60_000)).resolves.toBe(true);
    // Two rings before the wait are one hint: the next wait blocks.
    const next = track(signal.wait(1000));
    await vi.advanceTimersByTimeAsync(999);
    expect(next.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(next.result).toBe(false);
  });

  it('ends an unrung wait with false at its timeout, and keeps a ring that comes after it', async () => {
    const signal = new WakeSignal();
    const waited = track(signal.wait(500));
    await vi.advanceTimersByTimeAsync(500);
    expect(waited.result).toBe(false);
    signal.ring();
    await expect(signal.wait(60_000)).resolves.toBe(true);
  });

  it('tells listeners each time a wait begins to block, not when it returns on an earlier ring', async () => {
    const signal = new WakeSignal();
    let blocked = 0;
    const unsubscribe = signal.onWait(() => {
      blocked += 1;
    });
    signal.ring();
    await signal.wait(1000);
    expect(blocked).toBe(0);

    const waited = signal.wait(1000);
    expect(blocked).toBe(1);
    signal.ring();
    await waited;

    unsubscribe();
    const unheard = signal.wait(1000);
    signal.ring();
    await unheard;
    expect(blocked).toBe(1);
  });

  it('counts how long the relay has worked since its last wait, 0 while it waits', async () => {
    const signal = new WakeSignal();
    const waited = signal.wait(60_000);
    await vi.advanceTimersByTimeAsync(200);
    expect(signal.busyForMs()).toBe(0);
    signal.ring();
    await waited;
    await vi.advanceTimersByTimeAsync(300);
    expect(signal.busyForMs()).toBe(300);

    // A wait that returns at once on an earlier ring is no rest: the count goes on.
    signal.ring();
    await signal.wait(60_000);
    await vi.advanceTimersByTimeAsync(100);
    expect(signal.busyForMs()).toBe(400);

    // A wait that times out is one: the count starts again from its end.
    const timedOut = signal.wait(50);
    await vi.advanceTimersByTimeAsync(50);
    await timedOut;
    await vi.advanceTimersByTimeAsync(20);
    expect(signal.busyForMs()).toBe(20);
  });
});
