/**
 * The background services' one shape, on the two that take their work as a
 * function (the lease sweeper, the sequence watcher), on fake timers: a pass
 * runs without start(), stop() is safe before start() and twice, waits for
 * the pass in flight, and no pass begins after it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { type BackgroundService, PeriodicPass } from '../../src/relay/background-service.js';
import { LeaseSweeper } from '../../src/relay/lease-sweeper.js';
import { SequenceWatcher } from '../../src/relay/sequence-watcher.js';
import { WakeSignal } from '../../src/relay/wake-signal.js';

const LEASE_MS = 60_000;

/** A sweep that counts its calls and finishes only when told to. */
function heldSweep() {
  const finish: ((swept: number) => void)[] = [];
  let calls = 0;
  return {
    calls: () => calls,
    sweep: () => {
      calls += 1;
      return new Promise<number>((resolve) => finish.push(resolve));
    },
    finish: (swept: number) => {
      for (const resolve of finish.splice(0)) resolve(swept);
    },
  };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('every background service', () => {
  const services: [string, () => BackgroundService][] = [
    ['the lease sweeper', () => new LeaseSweeper(async () => 0, LEASE_MS, silentLogger)],
    [
      'the sequence watcher',
      () => new SequenceWatcher(async () => '1', new WakeSignal(), 2, silentLogger),
    ],
  ];

  it.each(services)(
    '%s stops at once when never started, and when stopped twice',
    async (_, make) => {
      const service = make();
      await expect(service.stop()).resolves.toBeUndefined();
      await service.start();
      await service.stop();
      await expect(service.stop()).resolves.toBeUndefined();
    },
  );
});

describe('the lease sweeper', () => {
  it('sweeps once without being started, and reports how many leases it deleted', async () => {
    const sweeper = new LeaseSweeper(async () => 3, LEASE_MS, silentLogger);
    expect(await sweeper.runOnce()).toBe(3);
  });

  it('reports a failed sweep as nothing deleted, without throwing', async () => {
    const sweeper = new LeaseSweeper(
      () => Promise.reject(new Error('connection refused')),
      LEASE_MS,
      silentLogger,
    );
    expect(await sweeper.runOnce()).toBe(0);
  });

  it('sweeps when started, then once per lease period, and never twice at once', async () => {
    const held = heldSweep();
    const sweeper = new LeaseSweeper(held.sweep, LEASE_MS, silentLogger);
    await sweeper.start();
    await sweeper.start();
    expect(held.calls()).toBe(1);
    // The first sweep still runs: the period's tick does not start another.
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(held.calls()).toBe(1);
    held.finish(0);
    await vi.advanceTimersByTimeAsync(LEASE_MS);
    expect(held.calls()).toBe(2);
    held.finish(0);
    await sweeper.stop();
  });

  it('waits for the sweep in flight when stopped, and sweeps no more', async () => {
    const held = heldSweep();
    const sweeper = new LeaseSweeper(held.sweep, LEASE_MS, silentLogger);
    await sweeper.start();
    let stopped = false;
    const stopping = sweeper.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    held.finish(1);
    await stopping;
    await vi.advanceTimersByTimeAsync(10 * LEASE_MS);
    expect(held.calls()).toBe(1);
  });
});

describe('the sequence watcher, one read at a time', () => {
  it('rings for the first value read and for a change, not for the same value, without being started', async () => {
    let sequence = 1;
    const signal = new WakeSignal();
    const watcher = new SequenceWatcher(async () => String(sequence), signal, 2, silentLogger);
    expect(await watcher.runOnce()).toBe(true);
    sequence = 2;
    expect(await watcher.runOnce()).toBe(true);
    // The clock stands still here, so no follow-up ring is due yet.
    expect(await watcher.runOnce()).toBe(false);
    expect(watcher.readCount()).toBe(3);
  });

  it('does not ring for a failed read, nor count it', async () => {
    const watcher = new SequenceWatcher(
      () => Promise.reject(new Error('connection refused')),
      new WakeSignal(),
      2,
      silentLogger,
    );
    expect(await watcher.runOnce()).toBe(false);
    expect(watcher.readCount()).toBe(0);
  });

  it('waits for the read in flight when stopped', async () => {
    let finish: (value: string) => void = () => undefined;
    const watcher = new SequenceWatcher(
      () =>
        new Promise<string>((resolve) => {
          finish = resolve;
        }),
      new WakeSignal(),
      2,
      silentLogger,
    );
    await watcher.start();
    await vi.advanceTimersByTimeAsync(2);
    let stopped = false;
    const stopping = watcher.stop().then(() => {
      stopped = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    finish('1');
    await stopping;
    expect(watcher.readCount()).toBe(1);
  });
});

describe('a periodic pass', () => {
  it('without runNow, first runs after one interval, then once per interval, never twice at once', async () => {
    const pass = heldSweep();
    const schedule = new PeriodicPass(pass.sweep, 1000);
    schedule.start({ runNow: false });
    expect(pass.calls()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(pass.calls()).toBe(1);
    // Still running at the next tick: skipped.
    await vi.advanceTimersByTimeAsync(1000);
    expect(pass.calls()).toBe(1);
    pass.finish(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(pass.calls()).toBe(2);
    const stopped = schedule.stop();
    pass.finish(0);
    await stopped;
    await vi.advanceTimersByTimeAsync(5000);
    expect(pass.calls()).toBe(2);
  });
});
