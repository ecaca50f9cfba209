/**
 * The settings of the tenant flag source (scope `flags`), read by `run` and
 * `tenants`: a flags file or LaunchDarkly (directly, through a Relay Proxy, or
 * from its Redis store), the two flag keys, and what to do without flags.
 */
import { boolean, duration, flagKey, optionalUrl, setting, text } from './setting.js';

/** Settings of the tenant flag source, in the order of the help text and the docs. */
export const FLAG_SETTINGS = {
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
