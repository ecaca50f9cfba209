/**
 * The gate used when no flag source is configured: every tenant may publish,
 * at any rate.
 */
import type { TenantDecision, TenantGate } from '../relay/tenant-gate.js';

const ENABLED: TenantDecision = Object.freeze({ paused: false, ratePerSecond: undefined });

/** A {@link TenantGate} that never pauses or throttles anyone. */
export function allowAllTenants(): TenantGate {
  return {
    decide: async (tenants) => new Map(tenants.map((tenant) => [tenant, ENABLED])),
    pausedTenants: () => [],
    closed: () => false,
    onChange: () => () => undefined,
    status: () => ({ source: 'none', initialized: true, failing: undefined }),
    close: async () => undefined,
  };
}
