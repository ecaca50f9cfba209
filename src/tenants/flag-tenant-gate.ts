/**
 * The per-tenant kill switch and throttle, decided by tenant flags in
 * LaunchDarkly's model, from whichever source the FlagClient reads: the
 * LaunchDarkly SDK (streaming, or a Relay Proxy's Redis store) or a local
 * flags file in LaunchDarkly's file data source format.
 *
 * For the context `{ kind: 'tenant', key: tenantId }`:
 * - the boolean flag (default `outbox-publish-enabled`, fallback true) says
 *   whether the tenant may publish: false pauses it, its events are held;
 * - the optional numeric flag (default `outbox-tenant-rate-limit`, fallback 0)
 *   caps its events per second; absent or 0 means unlimited.
 *
 * Evaluations are local (the SDK keeps the flags in memory). The gate
 * remembers its last decision for each tenant it has decided (up to
 * MAX_REMEMBERED; a paused tenant is never forgotten); the paused ones are
 * what the claim skips in SQL. When a flag changes, every remembered tenant is
 * evaluated again, then `tenant flags changed` is logged with the counts as
 * they are now, and the relay is woken: a resume, and a pause of a tenant
 * the relay has seen, take effect at once. Until the flag source has
 * initialized, the gate decides from the flags it saved (PostgreSQL or Redis)
 * when there are any, exactly as from the source; with nothing saved it fails
 * open (every tenant enabled) unless configured to fail closed (none is), and
 * those decisions are not remembered.
 */
import type { Logger } from '../log/logger.js';
import type { TenantDecision, TenantGate, TenantGateStatus } from '../relay/tenant-gate.js';
import type { FlagClient } from './flag-client.js';

/**
 * How many tenants' decisions the gate remembers for re-evaluation on a flag
 * change; past it, the least recently decided enabled tenant is forgotten.
 * Bounds the memory and the work of one flag change when tenant ids are not.
 */
const MAX_REMEMBERED = 10_000;

/** Options of {@link FlagTenantGate}. */
export interface FlagTenantGateOptions {
  publishFlagKey: string;
  rateFlagKey: string;
  failClosed: boolean;
  logger: Logger;
}

/** A {@link TenantGate} over a {@link FlagClient}, whatever its flag source. */
export class FlagTenantGate implements TenantGate {
  private readonly paused = new Set<string>();
  /** The last decision per tenant, least recently decided first. */
  private readonly decisions = new Map<string, TenantDecision>();
  private readonly listeners = new Set<() => void>();
  private reported: 'live' | 'saved' | 'failing' = 'live';
  private readonly onUpdate = () => void this.reevaluate();

  constructor(
    private readonly client: FlagClient,
    private readonly options: FlagTenantGateOptions,
  ) {
    client.events.on('update', this.onUpdate);
  }

  async decide(tenants: readonly string[]): Promise<ReadonlyMap<string, TenantDecision>> {
    const decisions = new Map<string, TenantDecision>();
    const available = this.report();
    await Promise.all(
      tenants.map(async (tenant) => {
        decisions.set(tenant, await this.decideOne(tenant, available));
      }),
    );
    return decisions;
  }

  pausedTenants(): readonly string[] {
    return [...this.paused];
  }

  closed(): boolean {
    return this.options.failClosed && !this.client.initialized() && !this.client.saved();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): TenantGateStatus {
    const initialized = this.client.initialized();
    const saved = initialized ? undefined : this.client.saved();
    return {
      source: this.client.source,
      initialized,
      failing: initialized || saved ? undefined : this.options.failClosed ? 'closed' : 'open',
      saved,
    };
  }

  async close(): Promise<void> {
    this.client.events.off('update', this.onUpdate);
    await this.client.close();
  }

  private async decideOne(tenant: string, available: boolean): Promise<TenantDecision> {
    // Unavailable with nothing saved: decide without asking the SDK (which
    // would only return the fallback, and log a warning per evaluation).
    if (!available) return { paused: this.options.failClosed, ratePerSecond: undefined };
    let enabled = true;
    let rate: number | undefined;
    try {
      enabled = (await this.client.variation(this.options.publishFlagKey, tenant, true)) !== false;
      const limit = await this.client.variation(this.options.rateFlagKey, tenant, 0);
      rate = typeof limit === 'number' && Number.isFinite(limit) && limit > 0 ? limit : undefined;
    } catch (error) {
      // An evaluation never throws in practice; if it does, fail as configured.
      this.options.logger.warn('flag evaluation failed', { tenant, error });
      enabled = !this.options.failClosed;
    }
    const decision = { paused: !enabled, ratePerSecond: rate };
    this.remember(tenant, decision);
    return decision;
  }

  private remember(tenant: string, decision: TenantDecision): void {
    if (decision.paused) this.paused.add(tenant);
    else this.paused.delete(tenant);
    this.decisions.delete(tenant);
    this.decisions.set(tenant, decision);
    if (this.decisions.size <= MAX_REMEMBERED) return;
    for (const [oldest, earlier] of this.decisions) {
      if (earlier.paused) continue;
      this.decisions.delete(oldest);
      return;
    }
  }

  /**
   * A flag changed: decide again for every remembered tenant, log the counts
   * that result (not those from before the change), then wake the relay.
   */
  private async reevaluate(): Promise<void> {
    const tenants = [...this.decisions.keys()];
    if (tenants.length > 0) await this.decide(tenants);
    let throttled = 0;
    for (const decision of this.decisions.values()) {
      if (!decision.paused && decision.ratePerSecond !== undefined) throttled++;
    }
    this.options.logger.info('tenant flags changed', { paused: this.paused.size, throttled });
    for (const listener of this.listeners) listener();
  }

  /** Whether flags are available (live or saved); logs when that changes. */
  private report(): boolean {
    const saved = this.client.initialized() ? undefined : this.client.saved();
    const now = this.client.initialized() ? 'live' : saved ? 'saved' : 'failing';
    if (now === this.reported) return now !== 'failing';
    this.reported = now;
    const { logger, failClosed } = this.options;
    if (now === 'live') {
      logger.info('tenant flags available again');
    } else if (saved) {
      logger.warn('tenant flags unavailable: applying the flags saved before', {
        store: saved.store,
        ...(saved.savedAt ? { savedAt: saved.savedAt.toISOString() } : {}),
        ...(saved.ageSeconds !== undefined ? { ageSeconds: Math.round(saved.ageSeconds) } : {}),
      });
    } else {
      logger.warn(
        failClosed
          ? 'tenant flags unavailable: failing closed, no tenant publishes'
          : 'tenant flags unavailable: failing open, every tenant publishes',
      );
    }
    return now !== 'failing';
  }
}
