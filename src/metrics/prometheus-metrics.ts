/**
 * The relay's Prometheus metrics (prom-client), on a registry of their own.
 *
 * Which metrics exist is `METRICS` (metric-table.ts, re-exported here); this
 * file registers and feeds them. Counters and histograms are fed by the relay
 * through the {@link RelayObserver} port; gauges about the broker, the gate
 * and the relay are read at scrape time; backlog and write-rate gauges are
 * set by the {@link BacklogMonitor} from PostgreSQL.
 *
 * Cardinality is bounded whatever the number of tenants: the only per-tenant
 * series are the top-N backlogs and the top-N writers, each plus one
 * `tenant="other"` series.
 */
import client from 'prom-client';
import type { PublishFailureKind } from '../errors.js';
import type { BacklogStats } from '../outbox/backlog-stats.js';
import type { PublisherStatus } from '../relay/publisher.js';
import type { BatchOutcome, HeldRows, RelayObserver } from '../relay/relay-observer.js';
import type { TenantGateStatus } from '../relay/tenant-gate.js';
import { METRICS, type MetricSpec } from './metric-table.js';

export { METRICS, type MetricSpec, type MetricType } from './metric-table.js';

/** The values of the flags_state gauge's `state` label. */
const FLAG_STATES = ['live', 'saved', 'fail_open', 'fail_closed'] as const;

/** The label value that stands for every tenant outside the top N. */
export const OTHER_TENANTS = 'other';

/** One tenant's write rate; `tenant` undefined sums the tenants outside the top N. */
export interface TenantRate {
  tenant: string | undefined;
  perSecond: number;
}

/** What the scrape-time gauges read. */
export interface MetricSources {
  broker(): PublisherStatus;
  pausedTenants(): number;
  throttledTenants(): number;
  inFlight(): number;
  /** The last readiness result, by check. */
  readiness(): Readonly<Record<string, boolean>>;
  /** Where the tenant gate's decisions come from (live flags, saved flags, a fallback). */
  flags?(): TenantGateStatus;
}

const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

/** The reasons claimed rows are left pending (`messages_held_total`'s label). */
const HELD_REASONS = [
  'paused',
  'throttled',
  'fenced',
] as const satisfies readonly (keyof HeldRows)[];

const FAILURE_LABEL: Record<PublishFailureKind, string> = {
  unroutable: 'unroutable',
  nacked: 'nacked',
  'channel-closed': 'channel_closed',
  'connection-lost': 'connection_lost',
  rejected: 'rejected',
  unpublishable: 'unpublishable',
};

/** The relay's metrics on their own registry. */
export class RelayMetrics implements RelayObserver {
  readonly registry = new client.Registry();
  private readonly published: client.Counter;
  private readonly failed: client.Counter<'kind'>;
  private readonly returned: client.Counter;
  private readonly dead: client.Counter;
  private readonly heldTotal: client.Counter;
  private readonly commitToPublish: client.Histogram;
  private readonly claimDuration: client.Histogram;
  private readonly publishBatchDuration: client.Histogram;
  private readonly pending: client.Gauge;
  private readonly oldestPendingAge: client.Gauge;
  private readonly held: client.Gauge;
  private readonly deadRows: client.Gauge;
  private readonly tenantPending: client.Gauge<'tenant'>;
  private readonly tenantOldestPendingAge: client.Gauge<'tenant'>;
  private readonly tenantWriteRate: client.Gauge<'tenant'>;
  private readonly statsRefreshed: client.Gauge;

  /** Also registers prom-client's process and Node.js metrics, with the same prefix. */
  constructor(
    private readonly prefix: string,
    sources: MetricSources,
  ) {
    const registers = [this.registry];
    const counter = (spec: MetricSpec) =>
      new client.Counter({
        name: this.name(spec),
        help: spec.help,
        labelNames: spec.labels,
        registers,
      });
    const gauge = (spec: MetricSpec, collect?: (g: client.Gauge) => void) =>
      new client.Gauge({
        name: this.name(spec),
        help: spec.help,
        labelNames: spec.labels,
        registers,
        ...(collect
          ? {
              collect(this: client.Gauge) {
                collect(this);
              },
            }
          : {}),
      });
    const histogram = (spec: MetricSpec, buckets: number[]) =>
      new client.Histogram({ name: this.name(spec), help: spec.help, buckets, registers });

    this.published = counter(METRICS.published);
    this.failed = counter(METRICS.failed) as client.Counter<'kind'>;
    this.returned = counter(METRICS.returned);
    this.dead = counter(METRICS.dead);
    this.heldTotal = counter(METRICS.heldTotal);
    for (const reason of HELD_REASONS) this.heldTotal.inc({ reason }, 0);
    // Start every failure kind at 0, so rate() sees the first failure.
    for (const kind of Object.values(FAILURE_LABEL)) this.failed.inc({ kind }, 0);
    this.commitToPublish = histogram(METRICS.commitToPublish, LATENCY_BUCKETS);
    this.claimDuration = histogram(METRICS.claimDuration, DURATION_BUCKETS);
    this.publishBatchDuration = histogram(METRICS.publishBatchDuration, DURATION_BUCKETS);
    this.pending = gauge(METRICS.pending);
    this.oldestPendingAge = gauge(METRICS.oldestPendingAge);
    this.held = gauge(METRICS.held);
    this.deadRows = gauge(METRICS.deadRows);
    this.tenantPending = gauge(METRICS.tenantPending) as client.Gauge<'tenant'>;
    this.tenantOldestPendingAge = gauge(METRICS.tenantOldestPendingAge) as client.Gauge<'tenant'>;
    this.tenantWriteRate = gauge(METRICS.tenantWriteRate) as client.Gauge<'tenant'>;
    this.statsRefreshed = gauge(METRICS.statsRefreshed);
    gauge(METRICS.pausedTenants, (g) => g.set(sources.pausedTenants()));
    gauge(METRICS.throttledTenants, (g) => g.set(sources.throttledTenants()));
    gauge(METRICS.inFlight, (g) => g.set(sources.inFlight()));
    gauge(METRICS.brokerConnected, (g) => g.set(sources.broker().connected ? 1 : 0));
    gauge(METRICS.brokerBlocked, (g) => g.set(sources.broker().blocked === undefined ? 0 : 1));
    gauge(METRICS.brokerChannels, (g) => g.set(sources.broker().channels));
    gauge(METRICS.ready, (g) => {
      for (const [check, ok] of Object.entries(sources.readiness())) g.set({ check }, ok ? 1 : 0);
    });
    const flags = sources.flags;
    if (flags) {
      gauge(METRICS.flagsState, (g) => {
        const status = flags();
        const now =
          status.initialized || status.source === 'none'
            ? 'live'
            : status.saved
              ? 'saved'
              : status.failing === 'closed'
                ? 'fail_closed'
                : 'fail_open';
        for (const state of FLAG_STATES) g.set({ state }, state === now ? 1 : 0);
      });
      gauge(METRICS.flagsSavedAge, (g) => {
        g.reset();
        const saved = flags().saved;
        if (saved?.ageSeconds !== undefined) g.set({ store: saved.store }, saved.ageSeconds);
      });
    }
    // The event-loop monitor at 100 ms, not prom-client's 10 ms: the finer one
    // cost a third of a percent of a core in an idle relay (measured).
    client.collectDefaultMetrics({
      register: this.registry,
      prefix,
      eventLoopMonitoringPrecision: 100,
    });
  }

  /** The full name of a metric of {@link METRICS}, with the prefix. */
  name(spec: MetricSpec): string {
    return `${this.prefix}${spec.name}`;
  }

  claimed(_rows: number, durationMs: number): void {
    this.claimDuration.observe(durationMs / 1000);
  }

  batchSettled(outcome: BatchOutcome): void {
    const now = Date.now();
    if (outcome.publishedCreatedAt.length > 0) {
      this.published.inc(outcome.publishedCreatedAt.length);
      for (const createdAt of outcome.publishedCreatedAt) {
        this.commitToPublish.observe(Math.max(0, now - createdAt.getTime()) / 1000);
      }
    }
    if (outcome.publishedCreatedAt.length + outcome.failures.length > 0) {
      this.publishBatchDuration.observe(outcome.publishMs / 1000);
    }
    for (const kind of outcome.failures) {
      this.failed.inc({ kind: FAILURE_LABEL[kind] });
      if (kind === 'unroutable') this.returned.inc();
    }
    if (outcome.dead > 0) this.dead.inc(outcome.dead);
    for (const reason of HELD_REASONS) {
      if (outcome.held[reason] > 0) this.heldTotal.inc({ reason }, outcome.held[reason]);
    }
  }

  /** Sets the backlog gauges from a fresh read. */
  setBacklog(stats: BacklogStats, at: Date = new Date()): void {
    this.pending.set(stats.pending);
    this.oldestPendingAge.set(stats.oldestSeconds);
    this.held.set(stats.held);
    this.deadRows.set(stats.dead);
    // Replace the per-tenant series: tenants that left the top N disappear.
    this.tenantPending.reset();
    this.tenantOldestPendingAge.reset();
    const folded = { pending: 0, oldestSeconds: 0 };
    for (const entry of stats.tenants) {
      if (entry.tenant === undefined || entry.tenant === OTHER_TENANTS) {
        folded.pending += entry.pending;
        folded.oldestSeconds = Math.max(folded.oldestSeconds, entry.oldestSeconds);
      } else {
        this.tenantPending.set({ tenant: entry.tenant }, entry.pending);
        this.tenantOldestPendingAge.set({ tenant: entry.tenant }, entry.oldestSeconds);
      }
    }
    this.tenantPending.set({ tenant: OTHER_TENANTS }, folded.pending);
    this.tenantOldestPendingAge.set({ tenant: OTHER_TENANTS }, folded.oldestSeconds);
    this.statsRefreshed.set(at.getTime() / 1000);
  }

  /**
   * Sets the write-rate gauges: the top N writers and one entry (tenant
   * undefined) for the rest. Tenants that left the top N disappear.
   */
  setWriteRates(rates: readonly TenantRate[]): void {
    this.tenantWriteRate.reset();
    let other = 0;
    for (const { tenant, perSecond } of rates) {
      if (tenant === undefined || tenant === OTHER_TENANTS) other += perSecond;
      else this.tenantWriteRate.set({ tenant }, perSecond);
    }
    this.tenantWriteRate.set({ tenant: OTHER_TENANTS }, other);
  }

  /** The Prometheus text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
