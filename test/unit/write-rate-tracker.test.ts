/**
 * The per-tenant write rate, as pure logic: two reads of each tenant's
 * pending rows and claimed count make a rate; counts that went down are
 * resets; held-back claims of paused or throttled tenants do not count as
 * writes; tenants missing from a read did not change. No services.
 */
import { describe, expect, it } from 'vitest';
import { topWriters, WriteRateTracker, writeRate } from '../../src/metrics/backlog-monitor.js';

const at = (seconds: number) => new Date(Date.UTC(2026, 10, 29) + seconds * 1000);
const row = (tenant: string, pending: number, claimed: number) => ({
  tenant,
  pending,
  claimed,
  oldestSeconds: 0,
});

describe('a write rate', () => {
  it('is the growth of the pending rows plus the rows claimed, per second', () => {
    // 100 written in 10 s: 70 claimed (and published), 30 still pending.
    expect(writeRate({ pending: 5, claimed: 1000 }, { pending: 35, claimed: 1070 }, 10)).toBe(10);
  });

  it('reads a claimed count that went down as a reset, and never goes below 0', () => {
    // The lease row was swept and made again: 12 claimed since.
    expect(writeRate({ pending: 0, claimed: 5000 }, { pending: 3, claimed: 12 }, 5)).toBe(3);
    // A purge shrank the backlog with no claim.
    expect(writeRate({ pending: 500, claimed: 10 }, { pending: 0, claimed: 10 }, 5)).toBe(0);
  });

  it("counts none of a paused tenant's claims and at most its rate of a throttled tenant's", () => {
    const before = { pending: 10_000, claimed: 0 };
    // Its claims took 25,000 rows in 10 s and held them back again; it wrote 600.
    const after = { pending: 10_100, claimed: 25_000 };
    expect(writeRate(before, after, 10, { paused: true, ratePerSecond: undefined })).toBe(10);
    expect(writeRate(before, after, 10, { paused: false, ratePerSecond: 50 })).toBe(60);
    expect(writeRate(before, after, 10, { paused: false, ratePerSecond: undefined })).toBe(2510);
  });
});

describe('the write-rate tracker', () => {
  it('takes a baseline of every tenant first, then rates the tenants active since the last read', () => {
    const tracker = new WriteRateTracker();
    expect(tracker.since()).toBeNull();
    expect(tracker.update(at(0), [row('flood', 0, 0), row('calm', 10, 100)])).toEqual(new Map());
    // The next read asks for tenants active since a minute before this one.
    expect(tracker.since()).toEqual(at(-60));

    // calm is missing: it neither wrote nor was claimed. new is seen first.
    const rates = tracker.update(at(2), [row('flood', 400, 1600), row('new', 5, 0)]);
    expect(rates).toEqual(new Map([['flood', 1000]]));
    expect(tracker.since()).toEqual(at(2 - 60));

    // calm's terms were kept: 20 more in 2 s.
    const later = tracker.update(at(4), [row('calm', 10, 140), row('new', 9, 0)]);
    expect(later).toEqual(
      new Map([
        ['calm', 20],
        ['new', 2],
      ]),
    );
  });

  it('forgets a tenant inactive for an hour, which then starts again from a baseline', () => {
    const tracker = new WriteRateTracker();
    tracker.update(at(0), [row('gone', 1, 10), row('busy', 0, 0)]);
    tracker.update(at(3500), [row('busy', 0, 100)]);
    tracker.update(at(3700), [row('busy', 0, 200)]);
    expect(tracker.update(at(3710), [row('gone', 1, 20), row('busy', 0, 210)])).toEqual(
      new Map([['busy', 1]]),
    );
  });
});

describe('the top writers', () => {
  it('are the N fastest that write at all, then the rest summed under no tenant', () => {
    const rates = new Map([
      ['b', 5],
      ['flood', 900],
      ['a', 5],
      ['idle', 0],
      ['c', 1],
    ]);
    expect(topWriters(rates, 3)).toEqual([
      { tenant: 'flood', perSecond: 900 },
      { tenant: 'a', perSecond: 5 },
      { tenant: 'b', perSecond: 5 },
      { tenant: undefined, perSecond: 1 },
    ]);
    expect(topWriters(new Map([['idle', 0]]), 3)).toEqual([{ tenant: undefined, perSecond: 0 }]);
    expect(topWriters(rates, 0)).toEqual([{ tenant: undefined, perSecond: 911 }]);
  });
});
