/**
 * Chooses the tenant gate from the configuration: LaunchDarkly when an SDK
 * key is set, the flags file when one is named, otherwise every tenant
 * enabled (with a warning).
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import type { TenantGate } from '../relay/tenant-gate.js';
import { allowAllTenants } from './allow-all-gate.js';
import { flagsFileClient, launchDarklyClient } from './flag-client.js';
import { LaunchDarklyGate } from './launchdarkly-gate.js';

/** Builds the configured gate; waits (bounded) for the flag source to initialize. */
export async function openTenantGate(config: Config, logger: Logger): Promise<TenantGate> {
  const gateOptions = {
    publishFlagKey: config.publishFlagKey,
    rateFlagKey: config.rateLimitFlagKey,
    failClosed: config.flagsFailClosed,
    logger,
  };
  if (config.launchDarklySdkKey) {
    const client = await launchDarklyClient({
      sdkKey: config.launchDarklySdkKey,
      baseUri: config.launchDarklyBaseUri,
      streamUri: config.launchDarklyStreamUri,
      eventsUri: config.launchDarklyEventsUri,
      sendEvents: config.launchDarklySendEvents,
      initTimeoutMs: config.flagsInitTimeoutMs,
      logger,
    });
    logger.info('tenant flags from LaunchDarkly', {
      streamUri: config.launchDarklyStreamUri || 'default',
    });
    return new LaunchDarklyGate(client, gateOptions);
  }
  if (config.flagsFile) {
    const client = await flagsFileClient(config.flagsFile, config.flagsInitTimeoutMs, logger);
    logger.info('tenant flags from a file', { path: config.flagsFile });
    return new LaunchDarklyGate(client, gateOptions);
  }
  logger.warn(
    'no tenant flag source configured (OUTBOX_FLAGS_FILE or LAUNCHDARKLY_SDK_KEY): every tenant is enabled',
  );
  return allowAllTenants();
}
