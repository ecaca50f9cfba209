/**
 * The port that decides whether a tenant may publish right now (the per-tenant
 * kill switch). Implementations evaluate locally and cheaply; the relay asks
 * per distinct tenant per batch, again right before publishing.
 */

/** Decides, per tenant, whether publishing is paused. */
export interface TenantGate {
  /** True when the tenant's events must be held in the outbox. */
  isPaused(tenantId: string): boolean;
  /** Tenants known to be paused now; the claim filters them out in SQL. */
  pausedTenants(): readonly string[];
  /** Calls `listener` whenever a decision may have changed; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  close(): Promise<void>;
}
