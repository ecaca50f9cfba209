/**
 * The one backoff of every retrying loop, with an injected random source so
 * each delay is exact: it doubles from the first delay to the cap, the jitter
 * factor stays inside its range, and a reset starts over.
 */
import { describe, expect, it } from 'vitest';
import {
  Backoff,
  backoffDelay,
  NO_JITTER,
  SHORTEN_JITTER,
  SPREAD_JITTER,
} from '../../src/backoff.js';

const doubling = { firstMs: 100, maxMs: 1000, jitter: NO_JITTER };

describe('the backoff', () => {
  it('doubles from the first delay and stops at the cap', () => {
    const backoff = new Backoff(doubling);
    const delays = Array.from({ length: 7 }, () => backoff.next());
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(backoff.failures).toBe(7);
  });

  it('starts over from the first delay after a reset', () => {
    const backoff = new Backoff(doubling);
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(100);
  });

  it('multiplies the capped delay by a factor drawn from the jitter range', () => {
    const spread = { firstMs: 100, maxMs: 5000, jitter: SPREAD_JITTER };
    expect(backoffDelay(spread, 1, () => 0)).toBe(50);
    expect(backoffDelay(spread, 1, () => 0.5)).toBe(100);
    expect(backoffDelay(spread, 1, () => 0.999)).toBeCloseTo(149.9);
    // The cap applies before the jitter: at most 1.5 × the cap.
    expect(backoffDelay(spread, 50, () => 0.999)).toBeCloseTo(7495);
    const shorten = { firstMs: 1000, maxMs: 60_000, jitter: SHORTEN_JITTER };
    expect(backoffDelay(shorten, 3, () => 0)).toBe(2000);
    expect(backoffDelay(shorten, 3, () => 0.999)).toBeCloseTo(3998);
  });

  it('keeps every jittered delay within its range over many draws', () => {
    const backoff = new Backoff({ firstMs: 100, maxMs: 30_000, jitter: SPREAD_JITTER });
    for (let failure = 1; failure <= 40; failure++) {
      const nominal = Math.min(30_000, 100 * 2 ** (failure - 1));
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(nominal * 0.5);
      expect(delay).toBeLessThan(nominal * 1.5);
    }
  });

  it('draws nothing from the random source without jitter', () => {
    let draws = 0;
    const backoff = new Backoff(doubling, () => {
      draws += 1;
      return 0.5;
    });
    backoff.next();
    expect(draws).toBe(0);
  });

  it('stays at the cap however many failures there were', () => {
    expect(backoffDelay(doubling, 5000)).toBe(1000);
  });
});
