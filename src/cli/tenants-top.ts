/**
 * `outbox-relay tenants --top`: which tenants write fastest right now, with
 * their pending events, oldest age and flag state, refreshed every
 * `--interval` until Ctrl-C. With `--json`: one report over one interval.
 *
 * A write rate needs two reads. Each read is the backlog metrics' statement
 * (src/metrics/backlog-monitor.ts has the formula and what it over-counts):
 * read-only, one at a time, bounded by a statement timeout of one interval,
 * returning a row per tenant active since the previous read. Its cost grows
 * with the pending rows (it counts them per tenant), so on a backlog in the
 * millions use a longer interval.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { WriteRateTracker } from '../metrics/backlog-monitor.js';
import { readBacklogStats } from '../outbox/backlog-stats.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import { withMigratedOutbox } from './migrated-outbox.js';
import { type FlagView, flagsUnavailableLine, openFlagView, tenantState } from './tenant-states.js';
import { type TopOutput, type TopSample, TopScreen, topLines } from './tenants-top-screen.js';
import { printable } from './terminal-text.js';

/** Most tenants in a JSON report, and in a plain (not a terminal) table. */
const JSON_TENANTS = 100;
const PLAIN_TENANTS = 20;

/** Reads the outbox and the flags, and turns two reads into a sample. */
class TopSampler {
  private readonly rates = new WriteRateTracker();
  private previousAt: Date | undefined;

  constructor(
    private readonly store: OutboxStore,
    private readonly flags: FlagView,
    private readonly timeoutMs: number,
  ) {}

  /** One read; undefined on the first (a baseline only). */
  async read(): Promise<TopSample | undefined> {
    const stats = await readBacklogStats(this.store, {
      topTenants: 0,
      pausedTenants: [],
      timeoutMs: this.timeoutMs,
      activeSince: this.rates.since(),
    });
    const decisions = await this.flags.decide(stats.activity.map((row) => row.tenant));
    const rates = this.rates.update(stats.readAt, stats.activity, decisions);
    const previousAt = this.previousAt;
    this.previousAt = stats.readAt;
    if (previousAt === undefined) return undefined;
    const tenants = stats.activity.map((row) => ({
      tenantId: row.tenant,
      writesPerSecond: rates.get(row.tenant) ?? null,
      pending: row.pending,
      oldestPendingSeconds: Math.round(row.oldestSeconds),
      ...tenantState(decisions?.get(row.tenant)),
    }));
    tenants.sort(
      (a, b) =>
        (b.writesPerSecond ?? -1) - (a.writesPerSecond ?? -1) ||
        b.pending - a.pending ||
        (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0),
    );
    return {
      flagSource: this.flags.source(),
      readAt: stats.readAt,
      intervalSeconds: (stats.readAt.getTime() - previousAt.getTime()) / 1000,
      writesPerSecond: [...rates.values()].reduce((sum, rate) => sum + rate, 0),
      pending: stats.pending,
      oldestPendingSeconds: Math.round(stats.oldestSeconds),
      activeTenants: tenants.length,
      tenants,
    };
  }
}

/** Resolves after `ms`, or as soon as `stopped` does. */
async function pause(ms: number, stopped: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, ms))), stopped]);
  clearTimeout(timer);
}

/** Two reads one interval apart, printed as one JSON report; returns the exit code. */
async function jsonReport(sampler: TopSampler, intervalMs: number): Promise<number> {
  await sampler.read();
  await sleep(intervalMs);
  const sample = await sampler.read();
  if (!sample) throw new Error('the second read of tenants --top gave no sample');
  const report = {
    ...sample,
    readAt: sample.readAt.toISOString(),
    tenants: sample.tenants.slice(0, JSON_TENANTS),
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  const unavailable = flagsUnavailableLine(sample.flagSource);
  if (unavailable !== undefined) process.stderr.write(unavailable);
  return unavailable === undefined ? 0 : 1;
}

/**
 * Draws a sample every interval on `out` until `stopped` resolves. A failed
 * read is shown and retried at the next interval. Always leaves the terminal
 * as it found it.
 */
async function liveView(
  sampler: Pick<TopSampler, 'read'>,
  out: TopOutput,
  intervalMs: number,
  stopped: Promise<void>,
): Promise<void> {
  const screen = new TopScreen(out);
  const restore = () => screen.leave();
  let stop = false;
  // Give the terminal back at once, even while a read is still under way.
  void stopped.then(() => {
    stop = true;
    restore();
  });
  // A crash must not leave the terminal without a cursor on the alternate screen.
  process.once('exit', restore);
  screen.enter();
  try {
    if (screen.live) {
      screen.draw([`measuring write rates over ${intervalMs / 1000}s... (Ctrl-C to quit)`]);
    }
    let next = Date.now();
    while (!stop) {
      try {
        const sample = await sampler.read();
        if (sample && !stop) screen.draw(topLines(sample, screen.tenantRows(PLAIN_TENANTS)));
      } catch (error) {
        if (!stop) screen.draw([`cannot read the outbox: ${printable(describeError(error))}`]);
      }
      next = Math.max(next + intervalMs, Date.now());
      await pause(next - Date.now(), stopped);
    }
  } finally {
    restore();
    process.off('exit', restore);
  }
}

/** Resolves on SIGINT or SIGTERM (Ctrl-C), or when stdout goes away; `dispose()` removes the listeners. */
function untilInterrupted(): { stopped: Promise<void>; dispose(): void } {
  let done: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (done = resolve));
  const stop = () => done();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.on('error', stop); // EPIPE: piped into `head`
  return {
    stopped,
    dispose() {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.stdout.off('error', stop);
    },
  };
}

/** Runs `tenants --top`; returns the exit code. */
export async function tenantsTop(
  config: Config,
  options: { json: boolean; intervalMs: number },
  logger: Logger,
): Promise<number> {
  return withMigratedOutbox(config, 'tenants', logger, async (store) => {
    const flags = await openFlagView(config, logger);
    try {
      // One statement at a time, none longer than an interval (nor a minute).
      const timeoutMs = Math.min(options.intervalMs, 60_000);
      const sampler = new TopSampler(store, flags, timeoutMs);
      if (options.json) return await jsonReport(sampler, options.intervalMs);
      const interrupt = untilInterrupted();
      try {
        await liveView(sampler, process.stdout, options.intervalMs, interrupt.stopped);
      } finally {
        interrupt.dispose();
      }
      return 0;
    } finally {
      await flags.close();
    }
  });
}
