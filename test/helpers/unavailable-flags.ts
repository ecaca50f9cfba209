/**
 * A tenant gate over a real LaunchDarkly client whose source never answers
 * (nothing listens on port 1), failing open or closed as asked.
 */
import { silentLogger } from '../../src/log/logger.js';
import { launchDarklyClient } from '../../src/tenants/flag-client.js';
import { FlagTenantGate } from '../../src/tenants/flag-tenant-gate.js';

export async function unavailableFlagsGate(failClosed: boolean): Promise<FlagTenantGate> {
  const client = await launchDarklyClient({
    sdkKey: 'sdk-test',
    streamUri: 'http://127.0.0.1:1',
    baseUri: 'http://127.0.0.1:1',
    eventsUri: 'http://127.0.0.1:1',
    sendEvents: false,
    initTimeoutMs: 200,
    logger: silentLogger,
  });
  return new FlagTenantGate(client, {
    publishFlagKey: 'outbox-publish-enabled',
    rateFlagKey: 'outbox-tenant-rate-limit',
    failClosed,
    logger: silentLogger,
  });
}
