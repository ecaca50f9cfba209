/**
 * The sequence watcher's pace, on fake timers with an in-memory sequence: fast
 * while rows arrive, one read per idle interval once nothing moves, none once
 * the relay has worked a while without waiting, and a read at once when it
 * waits again.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import {
  BUSY_FOR_MS,
  IDLE_INTERVAL_MS,
  SequenceWatcher,
} from '../../src/relay/sequence-watcher.js';
import { WakeSignal } from '../../src/relay/wake-signal.js';

const FAST_MS = 2;

/** A sequence, a watcher on it, and a relay stand-in that waits on the signal and counts rings. */
function setup() {
  let sequence = 0;
  const signal = new WakeSignal();
  const watcher = new SequenceWatcher(async () => String(sequence), signal, FAST_MS, silentLogger);
  const relay = {
    rings: 0,
    waiting: false,
    /** Waits on the signal again after each ring, as an idle relay loop does. */
    idle() {
      relay.waiting = true;
      void signal.wait(3_600_000).then((rung) => {
        if (rung) relay.rings += 1;
        if (relay.waiting) relay.idle();
      });
    },
    /** Stops waiting (the next ring is remembered, as for a relay busy claiming). */
    busy() {
      relay.waiting = false;
      signal.ring();
    },
  };
  return {
    signal,
    watcher,
    relay,
    insert: () => {
      sequence += 1;
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the sequence watcher', () => {
  it('reads every 2 ms while rows arrive, and backs off to one read per idle interval once nothing moves', async () => {
    const { watcher, relay, insert } = setup();
    relay.idle();
    watcher.start();
    // One row every millisecond for a second.
    for (let ms = 0; ms < 1000; ms++) {
      insert();
      await vi.advanceTimersByTimeAsync(1);
    }
    const busyReads = watcher.readCount();
    expect(busyReads).toBeGreaterThanOrEqual(450);
    expect(busyReads).toBeLessThanOrEqual(510);

    // Quiet: after the backoff, ten seconds cost about ten reads a second.
    await vi.advanceTimersByTimeAsync(2000);
    const before = watcher.readCount();
    await vi.advanceTimersByTimeAsync(10_000);
    const idleReads = watcher.readCount() - before;
    expect(idleReads).toBeGreaterThanOrEqual(10_000 / IDLE_INTERVAL_MS - 1);
    expect(idleReads).toBeLessThanOrEqual(10_000 / IDLE_INTERVAL_MS + 1);
    watcher.stop();
  });

  it('rings within one idle interval for the first row after a minute of silence', async () => {
    const { watcher, relay, insert } = setup();
    relay.idle();
    watcher.start();
    await vi.advanceTimersByTimeAsync(60_000);
    const rings = relay.rings;
    insert();
    let waitedMs = 0;
    while (relay.rings === rings) {
      await vi.advanceTimersByTimeAsync(1);
      waitedMs += 1;
    }
    expect(waitedMs).toBeLessThanOrEqual(IDLE_INTERVAL_MS);
    watcher.stop();
  });

  it('keeps ringing at doubling gaps after a change, for rows that commit after the sequence moved', async () => {
    const { watcher, relay, insert } = setup();
    relay.idle();
    watcher.start();
    await vi.advanceTimersByTimeAsync(5000);
    const rings = relay.rings;
    insert();
    await vi.advanceTimersByTimeAsync(5000);
    // The change, then follow-ups 2, 4, 8 … 512 ms apart.
    expect(relay.rings - rings).toBe(1 + 9);
    watcher.stop();
  });

  it('stops reading once the relay has worked a while without waiting, and reads at once when it waits again', async () => {
    const { watcher, relay, insert } = setup();
    relay.idle();
    watcher.start();
    await vi.advanceTimersByTimeAsync(1000);
    // Rows arrive as the relay starts working: reads go on for BUSY_FOR_MS, at the fast pace.
    insert();
    relay.busy();
    const before = watcher.readCount();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(watcher.readCount() - before).toBeLessThanOrEqual(BUSY_FOR_MS / FAST_MS + 2);
    const suspended = watcher.readCount();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(watcher.readCount()).toBe(suspended);

    // Rows arrived while the relay worked; it waits again: a read and a ring right away.
    insert();
    const reads = watcher.readCount();
    const rings = relay.rings;
    relay.idle();
    await vi.advanceTimersByTimeAsync(1);
    expect(watcher.readCount()).toBe(reads + 1);
    // (A follow-up ring of the change seen while busy may come with it.)
    expect(relay.rings).toBeGreaterThan(rings);
    watcher.stop();
  });

  it('stops reading when stopped', async () => {
    const { watcher, relay } = setup();
    relay.idle();
    watcher.start();
    await vi.advanceTimersByTimeAsync(1000);
    watcher.stop();
    const reads = watcher.readCount();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(watcher.readCount()).toBe(reads);
  });
});
