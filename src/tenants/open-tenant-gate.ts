/**
 * Chooses the tenant gate from the configuration: the Relay Proxy's Redis
 * store in daemon mode, LaunchDarkly when an SDK key is set (its flags kept
 * in the SDK's Redis store when LAUNCHDARKLY_REDIS_URL is set, otherwise in
 * the outbox schema's flag snapshot when a pool is given), the flags file
 * when one is named, otherwise every tenant enabled (with a warning).
 */
import type pg from 'pg';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';
import type { TenantGate } from '../relay/tenant-gate.js';
import { allowAllTenants } from './allow-all-gate.js';
import { flagsFileClient, launchDarklyClient, relayProxyRedisClient } from './flag-client.js';
import { FlagSnapshotStore } from './flag-snapshot-store.js';
import { FlagTenantGate } from './flag-tenant-gate.js';
import { openRedisFlagStore } from './redis-flag-store.js';

/** What the gate may use besides the configuration. */
export interface TenantGateDeps {
  /** A pool on the outbox database: LaunchDarkly's flags are then saved in its flag snapshot. */
  pool?: pg.Pool;
}

/** Builds the configured gate; waits (bounded) for the flag source to initialize. */
export async function openTenantGate(
  config: Config,
  logger: Logger,
  deps: TenantGateDeps = {},
): Promise<TenantGate> {
  const gateOptions = {
    publishFlagKey: config.publishFlagKey,
    rateFlagKey: config.rateLimitFlagKey,
    failClosed: config.flagsFailClosed,
    logger,
  };
  const redisStore = (daemonMode: boolean) =>
    openRedisFlagStore({
      url: config.launchDarklyRedisUrl,
      prefix: config.launchDarklyRedisPrefix,
      daemonMode,
      connectTimeoutMs: config.connectTimeoutMs,
      logger,
    });
  const redisWhere = {
    url: redactUrl(config.launchDarklyRedisUrl),
    prefix: config.launchDarklyRedisPrefix,
  };
  if (config.launchDarklyDaemonMode) {
    if (config.flagsFile) {
      throw new ConfigError(
        'OUTBOX_FLAGS_FILE',
        'set either a flags file or LAUNCHDARKLY_DAEMON_MODE, not both',
      );
    }
    const client = await relayProxyRedisClient({
      sdkKey: config.launchDarklySdkKey || undefined,
      eventsUri: config.launchDarklyEventsUri,
      sendEvents: config.launchDarklySendEvents,
      initTimeoutMs: config.flagsInitTimeoutMs,
      logger,
      redis: await redisStore(true),
    });
    logger.info("tenant flags from the Relay Proxy's Redis store (daemon mode)", redisWhere);
    return new FlagTenantGate(client, gateOptions);
  }
  if (config.launchDarklySdkKey) {
    const redis = config.launchDarklyRedisUrl ? await redisStore(false) : undefined;
    const snapshot =
      !redis && deps.pool
        ? await FlagSnapshotStore.open({
            pool: deps.pool,
            schema: config.schema,
            sdkKey: config.launchDarklySdkKey,
            flagKeys: [config.publishFlagKey, config.rateLimitFlagKey],
            logger,
          })
        : undefined;
    const client = await launchDarklyClient({
      sdkKey: config.launchDarklySdkKey,
      baseUri: config.launchDarklyBaseUri,
      streamUri: config.launchDarklyStreamUri,
      eventsUri: config.launchDarklyEventsUri,
      sendEvents: config.launchDarklySendEvents,
      initTimeoutMs: config.flagsInitTimeoutMs,
      logger,
      ...(snapshot ? { snapshot } : {}),
      ...(redis ? { redis } : {}),
    });
    logger.info('tenant flags from LaunchDarkly', {
      streamUri: config.launchDarklyStreamUri || 'default',
      savedIn: redis ? 'redis' : snapshot ? 'postgres' : 'nowhere',
      ...(redis ? redisWhere : {}),
    });
    return new FlagTenantGate(client, gateOptions);
  }
  if (config.flagsFile) {
    const client = await flagsFileClient(config.flagsFile, config.flagsInitTimeoutMs, logger);
    logger.info('tenant flags from a file', { path: config.flagsFile });
    return new FlagTenantGate(client, gateOptions);
  }
  logger.warn(
    'no tenant flag source configured (OUTBOX_FLAGS_FILE or LAUNCHDARKLY_SDK_KEY): every tenant is enabled',
    config.launchDarklyRedisUrl
      ? { ignored: 'LAUNCHDARKLY_REDIS_URL needs LAUNCHDARKLY_SDK_KEY or LAUNCHDARKLY_DAEMON_MODE' }
      : {},
  );
  return allowAllTenants();
}
