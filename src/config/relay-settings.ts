/**
 * The settings of `run` (scope `relay`): the broker, claiming and publishing,
 * wake-ups, leases and retention, shutdown, and the HTTP endpoint and metrics.
 */
import {
  boolean,
  duration,
  integer,
  metricsPrefix,
  optionalPort,
  setting,
  text,
  url,
} from './setting.js';

/** Settings of `run`, in the order of the help text and the docs. */
export const RELAY_SETTINGS = {
  amqpUrl: setting({
    env: 'AMQP_URL',
    flag: 'amqp-url',
    scope: 'relay',
    default: 'amqp://guest:guest@localhost:5672',
    description: 'RabbitMQ connection URL',
    parse: url(['amqp:', 'amqps:']),
  }),
  batchSize: setting({
    env: 'OUTBOX_BATCH_SIZE',
    flag: 'batch-size',
    scope: 'relay',
    default: '1000',
    description: 'Most rows claimed by one claim statement',
    parse: integer(1, 10_000),
  }),
  batchesInFlight: setting({
    env: 'OUTBOX_BATCHES_IN_FLIGHT',
    flag: 'batches-in-flight',
    scope: 'relay',
    default: '3',
    description: 'Claimed batches one relay publishes at once (claiming overlaps publishing)',
    parse: integer(1, 16),
  }),
  tenantsPerClaim: setting({
    env: 'OUTBOX_TENANTS_PER_CLAIM',
    flag: 'tenants-per-claim',
    scope: 'relay',
    default: '100',
    description: 'Most tenants one claim visits, round-robin; each gets a share of the batch',
    parse: integer(1, 10_000),
  }),
  channels: setting({
    env: 'OUTBOX_CHANNELS',
    flag: 'channels',
    scope: 'relay',
    default: '2',
    description: 'Confirm channels on the one AMQP connection',
    parse: integer(1, 32),
  }),
  maxInFlight: setting({
    env: 'OUTBOX_MAX_IN_FLIGHT',
    flag: 'max-in-flight',
    scope: 'relay',
    default: '500',
    description: 'Unconfirmed messages allowed on the connection (the sliding confirm window)',
    parse: integer(1, 100_000),
  }),
  stallTimeoutMs: setting({
    env: 'OUTBOX_STALL_TIMEOUT',
    flag: 'stall-timeout',
    scope: 'relay',
    default: '60s',
    description:
      'How long the relay loop may go without progress (a claim, an empty poll, a known wait) before /healthz answers 503',
    parse: duration(1000, 3_600_000),
  }),
  maxMessageBytes: setting({
    env: 'OUTBOX_MAX_MESSAGE_BYTES',
    flag: 'max-message-bytes',
    scope: 'relay',
    default: '134217728',
    description:
      "Largest message body the relay sends; a larger row goes dead at once. Match the broker's max_message_size (RabbitMQ's default: 128 MiB)",
    parse: integer(1, 536_870_912),
  }),
  pollIntervalMs: setting({
    env: 'OUTBOX_POLL_INTERVAL',
    flag: 'poll-interval',
    scope: 'relay',
    default: '1s',
    description: 'Full poll of the outbox when no wake-up signal arrives (the fallback)',
    parse: duration(10, 3_600_000),
  }),
  wakeIntervalMs: setting({
    env: 'OUTBOX_WAKE_INTERVAL',
    flag: 'wake-interval',
    scope: 'relay',
    default: '2ms',
    description:
      "How often the id sequence's last_value is read while rows arrive (it backs off to every 200 ms when idle, and stops while claims come back full); 0 turns it off",
    parse: duration(0, 60_000),
  }),
  listen: setting({
    env: 'OUTBOX_LISTEN',
    flag: 'listen',
    scope: 'relay',
    default: 'true',
    description: 'LISTEN for wake-up NOTIFYs from writers that opt in (enqueue { notify: true })',
    parse: boolean,
  }),
  leaseMs: setting({
    env: 'OUTBOX_LEASE',
    flag: 'lease',
    scope: 'relay',
    default: '60s',
    description:
      "How long a claim leases its tenants (not rows) to the relay: other relays skip them until the lease ends or the relay's PostgreSQL session does",
    parse: duration(1000, 86_400_000),
  }),
  retentionMs: setting({
    env: 'OUTBOX_RETENTION',
    flag: 'retention',
    scope: 'relay',
    default: '0',
    description: 'Keep published rows this long (0: delete each row once the broker confirms it)',
    parse: duration(0, 365 * 86_400_000),
  }),
  maxAttempts: setting({
    env: 'OUTBOX_MAX_ATTEMPTS',
    flag: 'max-attempts',
    scope: 'relay',
    default: '10',
    description:
      'Failed publishes (unroutable, nacked) before a row is marked dead; retries back off 1 s, 2 s, 4 s … 5 min',
    parse: integer(1, 1000),
  }),
  heartbeatMs: setting({
    env: 'AMQP_HEARTBEAT',
    flag: 'heartbeat',
    scope: 'relay',
    default: '10s',
    description: 'AMQP heartbeat; a silent broker is noticed after about two of them',
    parse: duration(1000, 600_000),
  }),
  confirmTimeoutMs: setting({
    env: 'OUTBOX_CONFIRM_TIMEOUT',
    flag: 'confirm-timeout',
    scope: 'relay',
    default: '15s',
    description:
      'Longest wait for a broker confirm (unless the broker blocks) before the channel is dropped and its messages retried',
    parse: duration(1000, 600_000),
  }),
  shutdownTimeoutMs: setting({
    env: 'OUTBOX_SHUTDOWN_TIMEOUT',
    flag: 'shutdown-timeout',
    scope: 'relay',
    default: '10s',
    description: 'On SIGTERM, how long to wait for outstanding confirms before releasing leases',
    parse: duration(0, 600_000),
  }),
  httpPort: setting({
    env: 'OUTBOX_HTTP_PORT',
    flag: 'http-port',
    scope: 'relay',
    default: '',
    description:
      'Port of the HTTP endpoint serving /healthz, /readyz and /metrics (empty: no endpoint; 0: any free port)',
    parse: optionalPort,
  }),
  httpHost: setting({
    env: 'OUTBOX_HTTP_HOST',
    flag: 'http-host',
    scope: 'relay',
    default: '0.0.0.0',
    description: 'Address the HTTP endpoint listens on',
    parse: text,
  }),
  metricsPrefix: setting({
    env: 'OUTBOX_METRICS_PREFIX',
    flag: 'metrics-prefix',
    scope: 'relay',
    default: 'outbox_relay_',
    description: 'Prefix of every metric name',
    parse: metricsPrefix,
  }),
  metricsTopTenants: setting({
    env: 'OUTBOX_METRICS_TOP_TENANTS',
    flag: 'metrics-top-tenants',
    scope: 'relay',
    default: '10',
    description:
      'Per-tenant metrics carry a tenant label only for this many tenants with the largest backlog, and this many writing fastest; the rest are summed under tenant="other"',
    parse: integer(0, 1000),
  }),
  statsIntervalMs: setting({
    env: 'OUTBOX_STATS_INTERVAL',
    flag: 'stats-interval',
    scope: 'relay',
    default: '15s',
    description:
      'How often the backlog gauges (pending and held rows, oldest pending age) are read from PostgreSQL',
    parse: duration(1000, 3_600_000),
  }),
} as const;
