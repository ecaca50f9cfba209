/**
 * Per-tenant rate limits as token buckets, on a clock the test passes in: a
 * newly limited tenant may send one second's worth at once, then earns its
 * rate, never saves more than a second's worth, and is reported blocked (left
 * out of claims) with the time until its next token.
 */
import { describe, expect, it } from 'vitest';
import { TenantThrottle } from '../../src/relay/tenant-throttle.js';

describe('the tenant throttle', () => {
  it('lets a tenant without a limit publish everything, and never blocks it', () => {
    const throttle = new TenantThrottle();
    expect(throttle.take('free', undefined, 100_000, 0)).toBe(100_000);
    expect(throttle.take('free', undefined, 100_000, 0)).toBe(100_000);
    expect(throttle.blocked(0)).toEqual([]);
    expect(throttle.nextTokenInMs(0)).toBeUndefined();
  });

  it("lets a newly limited tenant publish one second's worth at once, then blocks it until its next token", () => {
    const throttle = new TenantThrottle();
    expect(throttle.take('acme', 10, 25, 0)).toBe(10);
    expect(throttle.take('acme', 10, 25, 0)).toBe(0);
    expect(throttle.blocked(0)).toEqual(['acme']);
    // One token at 10/s: due 100 ms after the bucket emptied.
    expect(throttle.nextTokenInMs(0)).toBe(100);
    expect(throttle.nextTokenInMs(40)).toBe(60);
  });

  it('earns tokens at the rate, carrying fractions over, and unblocks the tenant once one is due', () => {
    const throttle = new TenantThrottle();
    throttle.take('acme', 4, 4, 0);
    expect(throttle.blocked(100)).toEqual(['acme']);
    // 0.4 s at 4/s: 1.6 tokens, of which 1 may be spent.
    expect(throttle.blocked(400)).toEqual([]);
    expect(throttle.take('acme', 4, 10, 400)).toBe(1);
    // 0.6 left, plus 0.1 s at 4/s: exactly 1.
    expect(throttle.take('acme', 4, 10, 500)).toBe(1);
    expect(throttle.take('acme', 4, 10, 500)).toBe(0);
    expect(throttle.blocked(500)).toEqual(['acme']);
  });

  it("never saves more than one second's worth, however long the tenant was quiet", () => {
    const throttle = new TenantThrottle();
    throttle.take('acme', 50, 50, 0);
    expect(throttle.take('acme', 50, 1000, 3_600_000)).toBe(50);
  });

  it('lets a tenant limited below one a second hold one token, earned at its rate', () => {
    const throttle = new TenantThrottle();
    expect(throttle.take('slow', 0.5, 10, 0)).toBe(1);
    expect(throttle.take('slow', 0.5, 10, 0)).toBe(0);
    expect(throttle.nextTokenInMs(0)).toBe(2000);
    expect(throttle.take('slow', 0.5, 10, 1000)).toBe(0);
    expect(throttle.take('slow', 0.5, 10, 2000)).toBe(1);
    // Quiet for a minute: still one token, not thirty.
    expect(throttle.take('slow', 0.5, 10, 62_000)).toBe(1);
  });

  it('applies a changed limit at once: a lowered one caps the saved tokens, a raised one refills faster', () => {
    const throttle = new TenantThrottle();
    throttle.take('acme', 100, 1, 0);
    // 99 tokens saved at 100/s; the limit drops to 5/s.
    expect(throttle.take('acme', 5, 1000, 0)).toBe(5);
    expect(throttle.take('acme', 5, 1000, 100)).toBe(0);
    // Raised to 1000/s: 0.5 s earns 500.
    expect(throttle.take('acme', 1000, 2000, 600)).toBe(500);
  });

  it('forgets the bucket of a tenant whose limit was removed', () => {
    const throttle = new TenantThrottle();
    throttle.take('acme', 1, 1, 0);
    expect(throttle.blocked(0)).toEqual(['acme']);
    expect(throttle.take('acme', undefined, 7, 0)).toBe(7);
    expect(throttle.blocked(0)).toEqual([]);
    expect(throttle.nextTokenInMs(0)).toBeUndefined();
    // Limited again: a fresh second's worth.
    expect(throttle.take('acme', 3, 10, 0)).toBe(3);
  });

  it('names only the blocked tenants, and sleeps until the soonest next token, at least 1 ms', () => {
    const throttle = new TenantThrottle();
    throttle.take('fast', 10, 10, 0);
    throttle.take('slow', 2, 2, 0);
    throttle.take('spare', 100, 1, 0);
    expect(throttle.blocked(0).sort()).toEqual(['fast', 'slow']);
    expect(throttle.nextTokenInMs(0)).toBe(100);
    // Past due (the loop woke late): no zero or negative sleep.
    throttle.take('late', 10, 10, 0);
    expect(throttle.nextTokenInMs(250)).toBe(1);
  });
});
