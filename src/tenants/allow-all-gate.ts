/**
 * The gate used when no flag source is configured: every tenant may publish.
 */
import type { TenantGate } from '../relay/tenant-gate.js';

/** A {@link TenantGate} that never pauses anyone. */
export function allowAllTenants(): TenantGate {
  return {
    isPaused: () => false,
    pausedTenants: () => [],
    onChange: () => () => undefined,
    close: async () => undefined,
  };
}
