/**
 * The port that decides, per tenant, whether publishing may go on right now
 * (the per-tenant kill switch) and how fast (the throttle). Implementations
 * evaluate locally and cheaply: the relay asks per distinct tenant per batch,
 * right before publishing, so a flip takes effect within one batch.
 */

/** What a tenant may do right now. */
export interface TenantDecision {
  /** Hold the tenant's events in the outbox. */
  paused: boolean;
  /** Events per second the tenant may publish; undefined = unlimited. */
  ratePerSecond: number | undefined;
}

/** The last known flags a gate applies while its source has not initialized. */
export interface SavedFlagsStatus {
  /** Where they were kept: the outbox schema ('postgres') or the SDK's Redis store ('redis'). */
  store: 'postgres' | 'redis';
  /** When a relay last received them from LaunchDarkly (PostgreSQL's clock); unknown for Redis. */
  savedAt: Date | undefined;
  /** Seconds since `savedAt`, measured on PostgreSQL's clock; unknown for Redis. */
  ageSeconds: number | undefined;
}

/** Where the decisions come from and whether that source is healthy (readiness detail). */
export interface TenantGateStatus {
  source: 'launchdarkly' | 'relay-proxy-redis' | 'flags-file' | 'test-data' | 'none';
  /** The source has delivered flags. */
  initialized: boolean;
  /** When the source is unavailable and nothing is saved: every tenant enabled ('open') or none ('closed'). */
  failing: 'open' | 'closed' | undefined;
  /** Set while the source has not initialized and the gate decides from saved flags instead. */
  saved?: SavedFlagsStatus | undefined;
}

/** Decides, per tenant, whether publishing is paused or throttled. */
export interface TenantGate {
  /** Decisions for each of `tenants`. Never rejects. */
  decide(tenants: readonly string[]): Promise<ReadonlyMap<string, TenantDecision>>;
  /** Tenants known to be paused now; the claim filters them out in SQL. */
  pausedTenants(): readonly string[];
  /** True when no tenant may publish at all (the source is down and configured to fail closed). */
  closed(): boolean;
  /** Calls `listener` whenever a decision may have changed; returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
  status(): TenantGateStatus;
  close(): Promise<void>;
}
