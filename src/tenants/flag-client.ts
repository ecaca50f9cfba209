/**
 * The LaunchDarkly clients the gate evaluates with, one per flag source: the
 * real SDK streaming from LaunchDarkly (or a Relay Proxy), a local flags file,
 * or a TestData source (tests). Only src/tenants/ imports the SDK.
 */
import { EventEmitter } from 'node:events';
import {
  basicLogger,
  init,
  integrations,
  type LDClient,
  type LDLogger,
  type LDOptions,
} from '@launchdarkly/node-server-sdk';
import { parse as parseYaml } from 'yaml';
import { describeError } from '../errors.js';
import { type Logger, silentLogger } from '../log/logger.js';
import type { SavedFlagsStatus, TenantGateStatus } from '../relay/tenant-gate.js';
import { FileChangeWatcher } from './file-change-watcher.js';
import type { FlagSnapshotStore } from './flag-snapshot-store.js';
import type { RedisFlagStore } from './redis-flag-store.js';

/** What the gate needs from a LaunchDarkly client. */
export interface FlagClient {
  readonly source: Exclude<TenantGateStatus['source'], 'none'>;
  variation(flagKey: string, tenantId: string, fallback: unknown): Promise<unknown>;
  initialized(): boolean;
  /** While not initialized: the saved flags the SDK evaluates from instead, if it has any. */
  saved(): SavedFlagsStatus | undefined;
  /** Emits 'update' whenever any flag may have changed. */
  readonly events: EventEmitter;
  close(): Promise<void>;
}

/** Routes the SDK's own log lines into ours, at warn and above (never the SDK key). */
function sdkLogger(logger: Logger): LDLogger {
  return basicLogger({
    level: 'warn',
    destination: (line: string) => logger.warn('launchdarkly', { detail: line }),
  });
}

function tenantContext(tenantId: string) {
  return { kind: 'tenant', key: tenantId };
}

/**
 * Handles the SDK's 'error' events: an unknown flag is expected (the
 * rate-limit flag is optional) and ignored; anything else is logged once per
 * distinct message, so a bad SDK key is visible without flooding the log.
 */
function listenForErrors(client: LDClient, logger: Logger): void {
  const seen = new Set<string>();
  client.on('error', (error: unknown) => {
    const message = describeError(error);
    if (/unknown feature flag/i.test(message) || seen.has(message)) return;
    if (seen.size < 100) seen.add(message);
    logger.warn('launchdarkly error', { detail: message });
  });
}

/** Wraps one SDK client; re-emits its flag changes (and those of `more`) as 'update'. */
function wrap(
  client: LDClient,
  source: FlagClient['source'],
  logger: Logger,
  overrides: Partial<Pick<FlagClient, 'initialized' | 'saved' | 'close'>> & {
    more?: EventEmitter;
  } = {},
): FlagClient {
  const events = new EventEmitter();
  client.on('update', () => events.emit('update'));
  overrides.more?.on('update', () => events.emit('update'));
  listenForErrors(client, logger);
  return {
    source,
    variation: (flagKey, tenantId, fallback) =>
      client.variation(flagKey, tenantContext(tenantId), fallback),
    initialized: overrides.initialized ?? (() => client.initialized()),
    saved: overrides.saved ?? (() => undefined),
    events,
    close:
      overrides.close ??
      (async () => {
        client.close();
      }),
  };
}

/** What applies until the source initializes, for the start-up warning. */
function meanwhile(saved: SavedFlagsStatus | undefined): string {
  if (!saved) {
    return 'tenants are handled as OUTBOX_FLAGS_FAIL_CLOSED says (default: all publish)';
  }
  if (saved.store === 'redis') return 'the flags saved in the Redis store apply';
  return `the flags saved in PostgreSQL apply (last received from LaunchDarkly ${saved.savedAt?.toISOString()}, ${Math.round(saved.ageSeconds ?? 0)} s ago)`;
}

async function waitForInit(
  client: LDClient,
  timeoutMs: number,
  what: string,
  logger: Logger,
  saved: () => SavedFlagsStatus | undefined = () => undefined,
): Promise<void> {
  try {
    await client.waitForInitialization({ timeout: Math.max(1, timeoutMs / 1000) });
  } catch (error) {
    logger.warn(`${what} did not initialize in time; until it does, ${meanwhile(saved())}`, {
      error,
    });
  }
}

/** Options of the streaming SDK client. */
export interface LaunchDarklyOptions {
  sdkKey: string;
  baseUri?: string;
  streamUri?: string;
  eventsUri?: string;
  sendEvents: boolean;
  initTimeoutMs: number;
  logger: Logger;
  /** Keeps the flags in PostgreSQL, for a start while LaunchDarkly is unreachable. */
  snapshot?: FlagSnapshotStore;
  /** Keeps the flags in the SDK's Redis store instead (LaunchDarkly's way, e.g. with a Relay Proxy). */
  redis?: RedisFlagStore;
}

/**
 * The real SDK, streaming flag changes (from LaunchDarkly or a Relay Proxy),
 * with the flags kept in PostgreSQL or Redis when one is given: until the
 * stream delivers, the SDK evaluates from what was kept there.
 */
export async function launchDarklyClient(options: LaunchDarklyOptions): Promise<FlagClient> {
  const { snapshot, redis, logger } = options;
  const store = snapshot ?? redis?.featureStore;
  const ldOptions: LDOptions = {
    stream: true,
    sendEvents: options.sendEvents,
    logger: sdkLogger(logger),
    ...(options.baseUri ? { baseUri: options.baseUri } : {}),
    ...(options.streamUri ? { streamUri: options.streamUri } : {}),
    ...(options.eventsUri ? { eventsUri: options.eventsUri } : {}),
    ...(store ? { featureStore: store } : {}),
  };
  const client = init(options.sdkKey, ldOptions);
  await redis?.refresh();
  const saved = (): SavedFlagsStatus | undefined => {
    if (client.initialized()) return undefined;
    if (snapshot) return snapshot.saved();
    if (redis?.hasData()) return { store: 'redis', savedAt: undefined, ageSeconds: undefined };
    return undefined;
  };
  const wrapped = wrap(client, 'launchdarkly', logger, {
    saved,
    ...(redis ? { more: redis.events } : {}),
    close: async () => {
      client.close();
      await snapshot?.stop();
      await redis?.close();
    },
  });
  await waitForInit(client, options.initTimeoutMs, 'LaunchDarkly', logger, saved);
  return wrapped;
}

/** Options of {@link relayProxyRedisClient}. */
export interface RelayProxyRedisOptions {
  /** Identifies the environment in events; daemon mode itself needs none. */
  sdkKey: string | undefined;
  eventsUri?: string;
  sendEvents: boolean;
  initTimeoutMs: number;
  logger: Logger;
  redis: RedisFlagStore;
}

/**
 * Daemon mode: the SDK reads flags only from the Redis store a Relay Proxy
 * fills, and never connects to LaunchDarkly for them. Initialized once Redis
 * holds a full data set; changes are seen by reading Redis again.
 */
export async function relayProxyRedisClient(options: RelayProxyRedisOptions): Promise<FlagClient> {
  const { redis, logger } = options;
  const sendEvents = options.sendEvents && options.sdkKey !== undefined;
  const client = init(options.sdkKey ?? 'daemon-mode', {
    useLdd: true,
    featureStore: redis.featureStore,
    sendEvents,
    logger: sdkLogger(logger),
    ...(options.eventsUri && sendEvents ? { eventsUri: options.eventsUri } : {}),
  });
  const deadline = Date.now() + options.initTimeoutMs;
  await redis.refresh();
  while (!redis.hasData() && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    await redis.refresh();
  }
  if (!redis.hasData()) {
    logger.warn(
      `the Redis store holds no LaunchDarkly data yet (is the Relay Proxy writing to it?); until it does, ${meanwhile(undefined)}`,
    );
  }
  return wrap(client, 'relay-proxy-redis', logger, {
    initialized: () => redis.hasData(),
    more: redis.events,
    close: async () => {
      client.close();
      await redis.close();
    },
  });
}

/** A client over a TestData source (tests; one TestData per client). */
export async function testDataClient(testData: integrations.TestData): Promise<FlagClient> {
  const client = init('test-data', { updateProcessor: testData.getFactory(), sendEvents: false });
  const wrapped = wrap(client, 'test-data', silentLogger);
  await client.waitForInitialization({ timeout: 5 });
  return wrapped;
}

function fileSourceClient(path: string, logger: Logger): LDClient {
  const factory = new integrations.FileDataSourceFactory({
    paths: [path],
    // Reloads are ours (FileChangeWatcher): the SDK's watcher misses a file
    // replaced by rename, as editors and Kubernetes ConfigMaps do.
    autoUpdate: false,
    yamlParser: (text: string) => parseYaml(text),
  });
  const client = init('flags-file', {
    updateProcessor: factory.getFactory(),
    sendEvents: false,
    logger: sdkLogger(logger),
  });
  listenForErrors(client, logger);
  return client;
}

/**
 * A local flags file in LaunchDarkly's file data source format (JSON or
 * YAML; per-tenant targets work). Any change to the file, written in place or
 * replaced by rename, builds a fresh SDK client from it and swaps it in.
 */
export async function flagsFileClient(
  path: string,
  initTimeoutMs: number,
  logger: Logger,
): Promise<FlagClient> {
  const events = new EventEmitter();
  let current = fileSourceClient(path, logger);
  await waitForInit(current, initTimeoutMs, `flags file ${path}`, logger);
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const next = fileSourceClient(path, logger);
      try {
        await next.waitForInitialization({ timeout: Math.max(1, initTimeoutMs / 1000) });
      } catch (error) {
        // A half-written or invalid file: keep the last good flags.
        logger.warn('flags file could not be loaded; keeping the previous flags', { path, error });
        next.close();
        return;
      }
      const previous = current;
      current = next;
      previous.close();
      logger.info('flags file reloaded', { path });
      events.emit('update');
    });
  };
  const watcher = new FileChangeWatcher(path, reload, logger);
  watcher.start();
  return {
    source: 'flags-file',
    variation: (flagKey, tenantId, fallback) =>
      current.variation(flagKey, tenantContext(tenantId), fallback),
    initialized: () => current.initialized(),
    saved: () => undefined,
    events,
    close: async () => {
      watcher.stop();
      await reloading;
      current.close();
    },
  };
}
