/**
 * Every setting of the relay and the CLI, parsed and validated once.
 *
 * `SETTINGS` is the single table of names, defaults and documentation: the
 * CLI's help, the flag parser and docs/configuration.md are derived from it.
 * `loadConfig` reads environment variables, lets command-line flags override
 * them, and returns a frozen object that is passed down — nothing else in the
 * code reads `process.env`.
 */
import { ConfigError } from './errors.js';
import { redactUrl } from './redact-url.js';
import { SCHEMA_NAME } from './schema-name.js';

// TODO(layout): import from src/redact-url.ts (src/broker/amqp-publisher.ts still imports it from here).
export { redactUrl } from './redact-url.js';

/** Which commands a setting applies to. */
export type SettingScope = 'database' | 'relay' | 'flags';

interface SettingSpec<T> {
  /** Environment variable name. */
  readonly env: string;
  /** Command-line flag, without the leading dashes. */
  readonly flag: string;
  readonly scope: SettingScope;
  /** The default, as a user would write it. */
  readonly default: string;
  readonly description: string;
  readonly parse: (raw: string, name: string) => T;
}

function setting<T>(spec: SettingSpec<T>): SettingSpec<T> {
  return spec;
}

function integer(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) {
      throw new ConfigError(name, `expected an integer from ${min} to ${max}, got '${raw}'`);
    }
    const value = Number(raw);
    if (value < min || value > max) {
      throw new ConfigError(name, `expected an integer from ${min} to ${max}, got ${value}`);
    }
    return value;
  };
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `250ms`, `30s`, `5m`, `2h`, `7d` or a bare number of milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = DURATION_UNITS[match[2] ?? 'ms'] ?? 1;
  return Math.round(amount * unit);
}

function duration(minMs: number, maxMs: number) {
  return (raw: string, name: string): number => {
    const value = parseDuration(raw);
    if (value === undefined) {
      throw new ConfigError(name, `expected a duration such as 500ms, 30s, 5m or 7d, got '${raw}'`);
    }
    if (value < minMs || value > maxMs) {
      throw new ConfigError(
        name,
        `expected a duration from ${minMs}ms to ${maxMs}ms, got '${raw}'`,
      );
    }
    return value;
  };
}

function boolean(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(name, `expected true or false, got '${raw}'`);
}

function url(protocols: readonly string[]) {
  return (raw: string, name: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new ConfigError(
        name,
        `expected a URL (${protocols.join(', ')}), got '${redactUrl(raw)}'`,
      );
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(
        name,
        `expected a ${protocols.join(' or ')} URL, got '${redactUrl(raw)}'`,
      );
    }
    return raw;
  };
}

function oneOf<const T extends string>(values: readonly T[]) {
  return (raw: string, name: string): T => {
    const value = raw.trim().toLowerCase();
    const found = values.find((candidate) => candidate === value);
    if (!found) throw new ConfigError(name, `expected one of ${values.join(', ')}, got '${raw}'`);
    return found;
  };
}

function optionalUrl(protocols: readonly string[]) {
  const parse = url(protocols);
  return (raw: string, name: string): string => (raw.trim() === '' ? '' : parse(raw, name));
}

function optionalPort(raw: string, name: string): number | undefined {
  if (raw.trim() === '') return undefined;
  return integer(0, 65_535)(raw, name);
}

function metricsPrefix(raw: string, name: string): string {
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]{0,63}$|^$/.test(raw)) {
    throw new ConfigError(
      name,
      `expected a metric name prefix (letters, digits, '_', ':'), got '${raw}'`,
    );
  }
  return raw;
}

function text(raw: string): string {
  return raw.trim();
}

function flagKey(raw: string, name: string): string {
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(raw)) {
    throw new ConfigError(
      name,
      `expected a flag key (letters, digits, '.', '_', '-'), got '${raw}'`,
    );
  }
  return raw;
}

function identifier(raw: string, name: string): string {
  if (!SCHEMA_NAME.test(raw)) {
    throw new ConfigError(
      name,
      `expected a lower-case SQL identifier (letters, digits, underscores; at most 63), got '${raw}'`,
    );
  }
  return raw;
}

/** The table of settings; order is the order of the help text and the docs. */
export const SETTINGS = {
  databaseUrl: setting({
    env: 'DATABASE_URL',
    flag: 'database-url',
    scope: 'database',
    default: 'postgres://postgres@localhost:5432/postgres',
    description: 'PostgreSQL connection URL (names the user: USER may be unset)',
    parse: url(['postgres:', 'postgresql:']),
  }),
  schema: setting({
    env: 'OUTBOX_SCHEMA',
    flag: 'schema',
    scope: 'database',
    default: 'outbox',
    description: 'PostgreSQL schema that holds the outbox table and the migration bookkeeping',
    parse: identifier,
  }),
  connectTimeoutMs: setting({
    env: 'OUTBOX_CONNECT_TIMEOUT',
    flag: 'connect-timeout',
    scope: 'database',
    default: '10s',
    description: 'How long start-up waits for PostgreSQL or RabbitMQ before giving up',
    parse: duration(100, 25_000),
  }),
  logLevel: setting({
    env: 'LOG_LEVEL',
    flag: 'log-level',
    scope: 'database',
    default: 'info',
    description: 'Lowest level logged: debug, info, warn or error',
    parse: oneOf(['debug', 'info', 'warn', 'error'] as const),
  }),
  logFormat: setting({
    env: 'LOG_FORMAT',
    flag: 'log-format',
    scope: 'database',
    default: 'json',
    description:
      'json: one JSON object per line (pino), for log shippers; pretty: coloured lines for a terminal',
    parse: oneOf(['json', 'pretty'] as const),
  }),
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
  flagsFile: setting({
    env: 'OUTBOX_FLAGS_FILE',
    flag: 'flags-file',
    scope: 'flags',
    default: '',
    description:
      'Local flags file (LaunchDarkly file data source format, JSON or YAML), reloaded on every change',
    parse: text,
  }),
  launchDarklySdkKey: setting({
    env: 'LAUNCHDARKLY_SDK_KEY',
    flag: 'launchdarkly-sdk-key',
    scope: 'flags',
    default: '',
    description:
      'LaunchDarkly server-side SDK key: tenant flags stream from LaunchDarkly (never logged)',
    parse: text,
  }),
  launchDarklyBaseUri: setting({
    env: 'LAUNCHDARKLY_BASE_URI',
    flag: 'launchdarkly-base-uri',
    scope: 'flags',
    default: '',
    description: 'LaunchDarkly base URI, e.g. a Relay Proxy (default: LaunchDarkly itself)',
    parse: optionalUrl(['http:', 'https:']),
  }),
  launchDarklyStreamUri: setting({
    env: 'LAUNCHDARKLY_STREAM_URI',
    flag: 'launchdarkly-stream-uri',
    scope: 'flags',
    default: '',
    description: 'LaunchDarkly streaming URI, e.g. a Relay Proxy (default: LaunchDarkly itself)',
    parse: optionalUrl(['http:', 'https:']),
  }),
  launchDarklyEventsUri: setting({
    env: 'LAUNCHDARKLY_EVENTS_URI',
    flag: 'launchdarkly-events-uri',
    scope: 'flags',
    default: '',
    description: 'LaunchDarkly events URI, e.g. a Relay Proxy (default: LaunchDarkly itself)',
    parse: optionalUrl(['http:', 'https:']),
  }),
  launchDarklySendEvents: setting({
    env: 'LAUNCHDARKLY_SEND_EVENTS',
    flag: 'launchdarkly-send-events',
    scope: 'flags',
    default: 'true',
    description: 'Send analytics events to LaunchDarkly',
    parse: boolean,
  }),
  launchDarklyRedisUrl: setting({
    env: 'LAUNCHDARKLY_REDIS_URL',
    flag: 'launchdarkly-redis-url',
    scope: 'flags',
    default: '',
    description:
      "Redis persistent store of the LaunchDarkly SDK (the Relay Proxy's store): flags are cached there, or read only from there in daemon mode",
    parse: optionalUrl(['redis:', 'rediss:']),
  }),
  launchDarklyRedisPrefix: setting({
    env: 'LAUNCHDARKLY_REDIS_PREFIX',
    flag: 'launchdarkly-redis-prefix',
    scope: 'flags',
    default: 'launchdarkly',
    description: 'Key prefix of the LaunchDarkly data in Redis (as the Relay Proxy writes it)',
    parse: text,
  }),
  launchDarklyDaemonMode: setting({
    env: 'LAUNCHDARKLY_DAEMON_MODE',
    flag: 'launchdarkly-daemon-mode',
    scope: 'flags',
    default: 'false',
    description:
      'Read flags only from the Redis store a Relay Proxy fills (no connection to LaunchDarkly); needs LAUNCHDARKLY_REDIS_URL',
    parse: boolean,
  }),
  publishFlagKey: setting({
    env: 'OUTBOX_PUBLISH_FLAG',
    flag: 'publish-flag',
    scope: 'flags',
    default: 'outbox-publish-enabled',
    description: 'Boolean flag, per tenant context: false pauses the tenant (its events are held)',
    parse: flagKey,
  }),
  rateLimitFlagKey: setting({
    env: 'OUTBOX_RATE_LIMIT_FLAG',
    flag: 'rate-limit-flag',
    scope: 'flags',
    default: 'outbox-tenant-rate-limit',
    description: 'Numeric flag, per tenant context: events per second (absent or 0: unlimited)',
    parse: flagKey,
  }),
  flagsFailClosed: setting({
    env: 'OUTBOX_FLAGS_FAIL_CLOSED',
    flag: 'flags-fail-closed',
    scope: 'flags',
    default: 'false',
    description: 'When the flag source is unavailable, hold every tenant instead of publishing all',
    parse: boolean,
  }),
  flagsInitTimeoutMs: setting({
    env: 'OUTBOX_FLAGS_INIT_TIMEOUT',
    flag: 'flags-init-timeout',
    scope: 'flags',
    default: '5s',
    description: 'How long start-up waits for the flag source before going on with the fallback',
    parse: duration(100, 60_000),
  }),
} as const;

/** Name of one setting in {@link SETTINGS}. */
export type SettingKey = keyof typeof SETTINGS;

/** The parsed, frozen configuration. */
export type Config = {
  readonly [K in SettingKey]: ReturnType<(typeof SETTINGS)[K]['parse']>;
};

/**
 * Parses every setting from `env`, with `flags` (keyed by flag name, from the
 * command line) taking precedence. Throws {@link ConfigError} naming the
 * variable or flag at the first invalid value.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>>,
  flags: Readonly<Record<string, string | undefined>> = {},
): Config {
  const config: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS) as [SettingKey, SettingSpec<unknown>][]) {
    const fromFlag = flags[spec.flag];
    const fromEnv = env[spec.env];
    if (fromFlag !== undefined) {
      config[key] = spec.parse(fromFlag, `--${spec.flag}`);
    } else if (fromEnv !== undefined && fromEnv !== '') {
      config[key] = spec.parse(fromEnv, spec.env);
    } else {
      config[key] = spec.parse(spec.default, spec.env);
    }
  }
  if (config.launchDarklyDaemonMode && config.flagsFile) {
    throw new ConfigError(
      env.LAUNCHDARKLY_DAEMON_MODE !== undefined
        ? 'LAUNCHDARKLY_DAEMON_MODE'
        : '--launchdarkly-daemon-mode',
      "daemon mode reads flags from a Relay Proxy's Redis, not from OUTBOX_FLAGS_FILE: set one of them",
    );
  }
  if (config.launchDarklyDaemonMode && !config.launchDarklyRedisUrl) {
    throw new ConfigError(
      env.LAUNCHDARKLY_DAEMON_MODE !== undefined
        ? 'LAUNCHDARKLY_DAEMON_MODE'
        : '--launchdarkly-daemon-mode',
      'daemon mode reads flags from Redis: set LAUNCHDARKLY_REDIS_URL too',
    );
  }
  if (config.flagsFile && config.launchDarklySdkKey) {
    throw new ConfigError(
      env.OUTBOX_FLAGS_FILE !== undefined ? 'OUTBOX_FLAGS_FILE' : '--flags-file',
      'set either a flags file or LAUNCHDARKLY_SDK_KEY, not both',
    );
  }
  return Object.freeze(config) as Config;
}

/** Settings that apply to commands of the given scopes, in table order. */
export function settingsFor(scopes: readonly SettingScope[]): [SettingKey, SettingSpec<unknown>][] {
  return (Object.entries(SETTINGS) as [SettingKey, SettingSpec<unknown>][]).filter(([, spec]) =>
    scopes.includes(spec.scope),
  );
}
