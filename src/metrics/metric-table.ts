/**
 * The table of every metric the relay exports: name (without the configured
 * prefix), type, help and labels. It is the one list the docs, the dashboard
 * and the alert rules are checked against (test/deploy-files.test.ts), so it
 * lives apart from prom-client and the code that registers and feeds the
 * metrics (prometheus-metrics.ts).
 */

/** The Prometheus type of a metric. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One row of {@link METRICS}. */
export interface MetricSpec {
  /** The name without the configured prefix. */
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
}

function metric(
  name: string,
  type: MetricType,
  help: string,
  labels: readonly string[] = [],
): MetricSpec {
  return { name, type, help, labels };
}

/** Every metric the relay exports (besides prom-client's process and Node.js defaults). */
export const METRICS = {
  published: metric(
    'messages_published_total',
    'counter',
    'Messages the broker confirmed; their rows are then deleted or marked published',
  ),
  failed: metric(
    'messages_failed_total',
    'counter',
    'Publish attempts that failed, by kind (unroutable, nacked, channel_closed, connection_lost, rejected, unpublishable); unpublishable rows go dead at once, the others are retried',
    ['kind'],
  ),
  returned: metric(
    'messages_returned_total',
    'counter',
    'Messages the broker returned as unroutable (no queue bound for the routing key)',
  ),
  dead: metric(
    'messages_dead_total',
    'counter',
    'Rows marked dead: at the maximum number of attempts, or at once when they can never be published',
  ),
  heldTotal: metric(
    'messages_held_total',
    'counter',
    'Claimed rows left pending unpublished, by reason: paused (kill switch), throttled (over its rate budget), fenced (this relay lost its liveness lock or its claim lease, or the claim did not commit); they are claimed again later',
    ['reason'],
  ),
  commitToPublish: metric(
    'commit_to_publish_seconds',
    'histogram',
    "From the row's created_at (its transaction's start) to the broker's confirm of its batch",
  ),
  claimDuration: metric(
    'claim_duration_seconds',
    'histogram',
    'Duration of one claim, until its rows are back (lock wait included; not its commit, which runs while the batch publishes)',
  ),
  publishBatchDuration: metric(
    'publish_batch_duration_seconds',
    'histogram',
    'From handing a batch to the broker to the last of its confirms',
  ),
  pending: metric(
    'pending_messages',
    'gauge',
    'Rows waiting to be published (held rows of paused tenants included, dead rows not)',
  ),
  oldestPendingAge: metric(
    'oldest_pending_age_seconds',
    'gauge',
    'Age of the oldest pending row (0 when none)',
  ),
  held: metric('held_messages', 'gauge', 'Pending rows of paused tenants'),
  deadRows: metric('dead_messages', 'gauge', 'Rows in the dead state, waiting for an operator'),
  tenantPending: metric(
    'tenant_pending_messages',
    'gauge',
    'Pending rows of the tenants with the largest backlogs; tenant="other" sums the rest',
    ['tenant'],
  ),
  tenantOldestPendingAge: metric(
    'tenant_oldest_pending_age_seconds',
    'gauge',
    'Age of the oldest pending row of the tenants with the largest backlogs; tenant="other" is the oldest of the rest',
    ['tenant'],
  ),
  tenantWriteRate: metric(
    'tenant_writes_per_second',
    'gauge',
    'Events written per second by the tenants writing fastest, between the last two backlog reads (pending rows grown plus rows claimed; a row claimed again counts again); tenant="other" sums the rest',
    ['tenant'],
  ),
  statsRefreshed: metric(
    'stats_refreshed_timestamp_seconds',
    'gauge',
    'When the backlog gauges were last read from PostgreSQL (Unix time)',
  ),
  pausedTenants: metric(
    'paused_tenants',
    'gauge',
    'Tenants with pending rows that the kill-switch flag pauses (learned as the relay meets their rows)',
  ),
  throttledTenants: metric(
    'throttled_tenants',
    'gauge',
    'Tenants out of rate budget right now (the rate-limit flag)',
  ),
  inFlight: metric(
    'messages_in_flight',
    'gauge',
    'Rows claimed by this relay whose batch has not ended',
  ),
  brokerConnected: metric('broker_connected', 'gauge', '1 while the AMQP connection is open'),
  brokerBlocked: metric(
    'broker_blocked',
    'gauge',
    '1 while the broker blocks publishing (memory or disk alarm)',
  ),
  brokerChannels: metric('broker_channels', 'gauge', 'Open AMQP channels of this relay'),
  ready: metric(
    'ready',
    'gauge',
    'Readiness by check (database, broker, flags, claims): 1 ready, 0 not',
    ['check'],
  ),
  flagsState: metric(
    'flags_state',
    'gauge',
    'Where tenant decisions come from: 1 for the current one of live, saved (flags saved in PostgreSQL or Redis while the source is unavailable), fail_open, fail_closed',
    ['state'],
  ),
  flagsSavedAge: metric(
    'flags_saved_age_seconds',
    'gauge',
    'While saved flags apply: seconds since a relay last received them from LaunchDarkly (absent otherwise, and for Redis)',
    ['store'],
  ),
} as const;
