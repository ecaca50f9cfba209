/**
 * Refreshes the backlog gauges (pending, oldest age, held, dead, top-N
 * tenants) and the per-tenant write rates from PostgreSQL every interval.
 * One bounded statement per interval; a failure keeps the last values (their
 * age shows in `stats_refreshed_timestamp_seconds`) and is logged once until
 * it recovers.
 *
 * The write rate costs nothing per insert. Between two reads, a tenant wrote
 * about as many rows as its pending rows grew plus the rows claimed from it
 * meanwhile (`tenant_leases.claimed`, which the claim keeps anyway). It counts
 * a row again each time it is claimed again: after a failed publish, after
 * its relay died or shut down unconfirmed, or after it was held back. Held
 * rows are the big case (a throttled tenant's claims take far more rows than
 * its budget), so, for a paused or rate-limited tenant, the claimed term is
 * capped at what it may publish. Over one interval it also moves with the
 * tenant's rows in flight (claimed, still pending), by at most the relays'
 * in-flight rows; that error cancels out over the next reads.
 */
import type { Logger } from '../log/logger.js';
import { readBacklogStats, type TenantActivity } from '../outbox/backlog-stats.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import { type BackgroundService, PeriodicPass } from '../relay/background-service.js';
import type { TenantDecision } from '../relay/tenant-gate.js';
import type { RelayMetrics, TenantRate } from './prometheus-metrics.js';

/**
 * How far before the previous read the next one looks for writes: a writer's
 * transaction open across that read commits rows created before it.
 */
const ACTIVITY_MARGIN_MS = 60_000;
/** A tenant inactive this long is forgotten (as its lease row is swept). */
const FORGET_AFTER_MS = 3_600_000;

/** A tenant's two write-rate terms at one read. */
type RateTerms = Pick<TenantActivity, 'pending' | 'claimed'>;

/**
 * Events per second written between two reads `seconds` apart: the growth of
 * the pending rows plus the rows claimed meanwhile, never below 0 (a purge
 * shrinks the backlog without a claim). A claimed count that went down was
 * reset (its lease row was swept and made again). For a paused tenant the
 * claimed term is 0, for a rate-limited one at most its rate: its other
 * claims were held back and are still pending.
 */
export function writeRate(
  before: RateTerms,
  after: RateTerms,
  seconds: number,
  decision?: TenantDecision,
): number {
  let claimed = after.claimed >= before.claimed ? after.claimed - before.claimed : after.claimed;
  if (decision?.paused) claimed = 0;
  else if (decision?.ratePerSecond !== undefined) {
    claimed = Math.min(claimed, decision.ratePerSecond * seconds);
  }
  return Math.max(0, after.pending - before.pending + claimed) / seconds;
}

/**
 * Keeps each active tenant's terms from the previous read, to turn the next
 * read into write rates. A tenant missing from a read (it neither wrote nor
 * was claimed since {@link since}) keeps its terms.
 */
export class WriteRateTracker {
  private readonly last = new Map<string, RateTerms & { seenAt: number }>();
  private lastReadAt: number | undefined;

  /** Where the next read starts looking for activity; null: every tenant (the first read). */
  since(): Date | null {
    return this.lastReadAt === undefined ? null : new Date(this.lastReadAt - ACTIVITY_MARGIN_MS);
  }

  /**
   * Takes one read (at the database's `readAt`). Returns the write rate of
   * every tenant in it that the tracker already knew: none on the first read.
   */
  update(
    readAt: Date,
    activity: readonly TenantActivity[],
    decisions?: ReadonlyMap<string, TenantDecision>,
  ): Map<string, number> {
    const now = readAt.getTime();
    const seconds = this.lastReadAt === undefined ? 0 : (now - this.lastReadAt) / 1000;
    const rates = new Map<string, number>();
    for (const row of activity) {
      const before = this.last.get(row.tenant);
      this.last.set(row.tenant, { pending: row.pending, claimed: row.claimed, seenAt: now });
      if (before && seconds > 0) {
        rates.set(row.tenant, writeRate(before, row, seconds, decisions?.get(row.tenant)));
      }
    }
    for (const [tenant, entry] of this.last) {
      if (now - entry.seenAt > FORGET_AFTER_MS) this.last.delete(tenant);
    }
    this.lastReadAt = now;
    return rates;
  }
}

/** Write rates fastest first (ties by tenant id). */
export function byRate(rates: ReadonlyMap<string, number>): [string, number][] {
  return [...rates].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The `top` fastest writers (those writing at all), then one entry with an
 * undefined tenant that sums the rest.
 */
export function topWriters(rates: ReadonlyMap<string, number>, top: number): TenantRate[] {
  const sorted = byRate(rates);
  const leaders = sorted.slice(0, top).filter(([, rate]) => rate > 0);
  const rest = sorted.slice(leaders.length).reduce((sum, [, rate]) => sum + rate, 0);
  return [
    ...leaders.map(([tenant, perSecond]) => ({ tenant, perSecond })),
    { tenant: undefined, perSecond: rest },
  ];
}

/** How often to read, how many tenants to label, and who is paused. */
export interface BacklogMonitorOptions {
  intervalMs: number;
  topTenants: number;
  /** The tenants paused right now: their pending rows count as held. */
  pausedTenants: () => readonly string[];
  /**
   * The flags of the active tenants, to cap their claimed term (the tenant
   * gate's decide). Without it only the paused tenants' terms are capped.
   */
  decide?: (tenants: readonly string[]) => Promise<ReadonlyMap<string, TenantDecision>>;
  logger: Logger;
}

/** Sets the backlog and write-rate gauges of a {@link RelayMetrics} from PostgreSQL, periodically. */
export class BacklogMonitor implements BackgroundService<void> {
  private readonly schedule: PeriodicPass;
  private running: Promise<void> | undefined;
  private failing = false;
  private readonly rates = new WriteRateTracker();

  constructor(
    private readonly store: OutboxStore,
    private readonly metrics: RelayMetrics,
    private readonly options: BacklogMonitorOptions,
  ) {
    this.schedule = new PeriodicPass(() => this.runOnce(), options.intervalMs);
  }

  /** Reads the backlog now, then every interval. */
  async start(): Promise<void> {
    this.schedule.start({ runNow: true });
  }

  /** Ends the schedule; waits for a read in flight (bounded by its statement timeout). */
  async stop(): Promise<void> {
    await this.schedule.stop();
    await this.running;
  }

  /** One read; concurrent calls share it. A failed read keeps the last values, and the next interval tries again. */
  runOnce(): Promise<void> {
    this.running ??= this.read().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async read(): Promise<void> {
    try {
      const since = this.rates.since();
      const paused = this.options.pausedTenants();
      const stats = await readBacklogStats(this.store, {
        topTenants: this.options.topTenants,
        pausedTenants: paused,
        // Never let one read outlast the interval, nor hold up a shutdown for long.
        timeoutMs: Math.min(this.options.intervalMs, 5000),
        activeSince: since,
      });
      const tenants = stats.activity.map((row) => row.tenant);
      const decisions = this.options.decide
        ? await this.options.decide(tenants)
        : new Map(paused.map((tenant) => [tenant, { paused: true, ratePerSecond: undefined }]));
      const rates = this.rates.update(stats.readAt, stats.activity, decisions);
      this.metrics.setBacklog(stats);
      // The first read is only a baseline: rates need two.
      if (since !== null) this.metrics.setWriteRates(topWriters(rates, this.options.topTenants));
      if (this.failing) this.options.logger.info('backlog metrics readable again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) {
        this.options.logger.warn('cannot read the backlog metrics; keeping the last values', {
          error,
        });
      }
      this.failing = true;
    }
  }
}
