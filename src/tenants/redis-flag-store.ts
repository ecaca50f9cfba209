/**
 * LaunchDarkly's own persistent store, for teams that run the Relay Proxy
 * with Redis: the SDK's Redis store (`@launchdarkly/node-server-sdk-redis`,
 * an optional peer dependency, imported only when LAUNCHDARKLY_REDIS_URL is
 * set). Without daemon mode the SDK streams from LaunchDarkly and keeps its
 * flags in Redis, and a relay that starts while LaunchDarkly is unreachable
 * evaluates from Redis. In daemon mode (LAUNCHDARKLY_DAEMON_MODE) the SDK
 * reads only from Redis, which a Relay Proxy fills, and never connects to
 * LaunchDarkly.
 *
 * The Redis connection is ours, made to fail fast: a command while Redis is
 * down fails at once instead of queueing, so an evaluation never waits for
 * Redis, and {@link LastKnownStore} answers with the last known items
 * meanwhile. In daemon mode nothing tells the SDK that Redis changed, so the
 * items the SDK has evaluated are read again every second (through the
 * store's one-second cache) and a changed version is reported as an update.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { LDFeatureStore, LDLogger, LDOptions } from '@launchdarkly/node-server-sdk';
import { backoffDelay, SPREAD_JITTER } from '../backoff.js';
import { ConfigError, describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';
import { LastKnownStore } from './last-known-store.js';

/** The optional package this module needs. */
export const REDIS_STORE_PACKAGE = '@launchdarkly/node-server-sdk-redis';

/** How often daemon mode looks for changes in Redis (also the store's cache TTL). */
const DAEMON_POLL_MS = 1000;

type RedisPackage = typeof import('@launchdarkly/node-server-sdk-redis');

/** What we use of an ioredis connection. */
interface RedisConnection {
  readonly status: string;
  connect(): Promise<void>;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}
type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisConnection;

/** Options of {@link openRedisFlagStore}. */
export interface RedisFlagStoreOptions {
  url: string;
  prefix: string;
  daemonMode: boolean;
  connectTimeoutMs: number;
  logger: Logger;
  /** Imports the package (tests replace it to see the error when it is missing). */
  importPackage?: () => Promise<unknown>;
}

/** The SDK's Redis store, ready to hand to the SDK. */
export interface RedisFlagStore {
  readonly featureStore: NonNullable<LDOptions['featureStore']>;
  /** Whether Redis holds a full data set (the `$inited` key), as last checked. */
  hasData(): boolean;
  /** Checks now whether Redis holds a full data set (once the SDK has made its store). */
  refresh(): Promise<void>;
  /** Emits 'update' when an item the SDK evaluated changed in Redis (daemon mode). */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

function isMissing(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    describeError(error).includes(REDIS_STORE_PACKAGE)
  );
}

/** Imports the Redis store package and the ioredis it depends on; a clear ConfigError if not installed. */
export async function loadRedisPackage(
  importPackage: () => Promise<unknown> = () => import('@launchdarkly/node-server-sdk-redis'),
): Promise<{ RedisFeatureStore: RedisPackage['RedisFeatureStore']; Redis: RedisConstructor }> {
  let module: Partial<RedisPackage> & { default?: Partial<RedisPackage> };
  try {
    module = (await importPackage()) as typeof module;
  } catch (error) {
    if (!isMissing(error)) throw error;
    throw new ConfigError(
      'LAUNCHDARKLY_REDIS_URL',
      `the Redis store needs the optional package ${REDIS_STORE_PACKAGE}: run \`npm install ${REDIS_STORE_PACKAGE}\` next to outbox-relay`,
    );
  }
  const RedisFeatureStore = module.RedisFeatureStore ?? module.default?.RedisFeatureStore;
  if (!RedisFeatureStore) throw new Error(`${REDIS_STORE_PACKAGE} has no RedisFeatureStore`);
  // The ioredis the package itself uses, wherever npm put it.
  const fromPackage = createRequire(createRequire(import.meta.url).resolve(REDIS_STORE_PACKAGE));
  const ioredis = fromPackage('ioredis') as {
    Redis?: RedisConstructor;
    default?: RedisConstructor;
  };
  const Redis = ioredis.Redis ?? ioredis.default;
  if (!Redis) throw new Error('cannot load ioredis');
  return { RedisFeatureStore, Redis };
}

/** The SDK's lines about Redis, each distinct one once (ioredis repeats its error on every retry). */
function onceLogger(logger: Logger): LDLogger {
  const seen = new Set<string>();
  const line = (...args: unknown[]) => {
    const detail = args
      .map((arg) => (typeof arg === 'string' ? arg : describeError(arg)))
      .join(' ');
    if (seen.has(detail)) return;
    if (seen.size < 100) seen.add(detail);
    logger.warn('launchdarkly redis store', { detail });
  };
  return { error: line, warn: line, info: () => undefined, debug: () => undefined };
}

/**
 * Between ioredis's reconnects: 200 ms doubling to 2 s, jittered, since every
 * relay reconnects at once when the shared Redis comes back.
 */
const RECONNECT = { firstMs: 200, maxMs: 2000, jitter: SPREAD_JITTER } as const;

/** Connects to Redis (not waiting past `connectTimeoutMs`) and builds the SDK's Redis store over it. */
export async function openRedisFlagStore(options: RedisFlagStoreOptions): Promise<RedisFlagStore> {
  const { logger } = options;
  const { RedisFeatureStore, Redis } = await loadRedisPackage(options.importPackage);
  const redis = new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: options.connectTimeoutMs,
    retryStrategy: (times: number) => backoffDelay(RECONNECT, times),
  });
  const where = { url: redactUrl(options.url), prefix: options.prefix };
  let reachable = false;
  redis.on('error', () => undefined); // Reported below, once per outage.
  redis.on('ready', () => {
    if (!reachable) logger.info('LaunchDarkly Redis store connected', where);
    reachable = true;
  });
  redis.on('close', () => {
    if (reachable) logger.warn('LaunchDarkly Redis store unreachable; reconnecting', where);
    reachable = false;
  });
  try {
    await redis.connect();
  } catch (error) {
    logger.warn('cannot connect to the LaunchDarkly Redis store; retrying in the background', {
      ...where,
      error,
    });
  }
  const up = () => redis.status === 'ready';
  const sdkStore = RedisFeatureStore({
    client: redis as never,
    prefix: options.prefix,
    // Daemon mode sees a Relay Proxy's writes only by reading Redis again.
    ...(options.daemonMode ? { cacheTTL: DAEMON_POLL_MS / 1000 } : {}),
  });
  let store: LastKnownStore | undefined;
  const featureStore = (context: Parameters<typeof sdkStore>[0]): LDFeatureStore => {
    const quiet = {
      ...context,
      basicConfiguration: { ...context.basicConfiguration, logger: onceLogger(logger) },
    };
    store = new LastKnownStore(sdkStore(quiet), up);
    return store;
  };

  const events = new EventEmitter();
  let hasData = false;
  const versions = new Map<string, number | undefined>();
  const checkInitialized = () =>
    new Promise<boolean>((resolve) => (store ? store.initialized(resolve) : resolve(false)));
  const poll = async () => {
    const before = hasData;
    hasData = await checkInitialized();
    let changed = hasData !== before;
    if (options.daemonMode && store) {
      for (const { kind, key } of store.watched()) {
        const item = await new Promise<{ version: number } | null>((resolve) =>
          store?.get(kind, key, resolve),
        );
        const id = `${kind.namespace}:${key}`;
        const version = item?.version;
        if (versions.has(id) && versions.get(id) !== version) changed = true;
        versions.set(id, version);
      }
    }
    if (changed) events.emit('update');
  };
  let polling: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    polling = polling
      .then(poll)
      .catch((error) => logger.warn('cannot read the LaunchDarkly Redis store', { error }));
  }, DAEMON_POLL_MS);
  timer.unref();

  return {
    featureStore,
    hasData: () => hasData,
    async refresh() {
      hasData = await checkInitialized();
    },
    events,
    async close() {
      clearInterval(timer);
      await polling;
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
