/**
 * What the next claim asks for: from the tenant after the last one served (so
 * tenants take turns), skipping paused tenants, throttled tenants with no
 * token left, and the rows this relay already has in flight. A relay that
 * does not hold its liveness lock claims nothing.
 */
import { type ClaimInProgress, claimBatchCommitting } from '../outbox/claim.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import type { RelayLiveness } from './relay-liveness.js';
import type { RelayObserver } from './relay-observer.js';
import type { TenantGate } from './tenant-gate.js';
import type { TenantThrottle } from './tenant-throttle.js';

/** Rows read per tenant at least, even when many tenants share a claim. */
const MIN_ROWS_PER_TENANT = 10;

/** Settings of {@link BatchClaimer}: `RelayOptions`' of the same names. */
export interface BatchClaimerOptions {
  relayId: string;
  batchSize: number;
  tenantsPerClaim: number;
  leaseMs: number;
}

/** What {@link BatchClaimer} works with; all shared with the rest of the relay. */
export interface BatchClaimerDeps {
  store: OutboxStore;
  gate: TenantGate;
  throttle: TenantThrottle;
  liveness: RelayLiveness;
  observer: RelayObserver;
  /** The relay's in-flight row ids: a claim skips them and adds what it claimed. */
  inFlightIds: Set<string>;
}

/** Claims the relay's batches one at a time; see the module comment. */
export class BatchClaimer {
  /** The last tenant the previous claim served; '' starts from the first tenant. */
  private cursor = '';

  constructor(
    private readonly options: BatchClaimerOptions,
    private readonly deps: BatchClaimerDeps,
  ) {}

  /**
   * Claims the next batch (possibly empty), returning its rows while its
   * commit is under way; rejects if the claim fails or the lock is not held.
   * The next claim must wait for `committed`.
   */
  async claim(): Promise<ClaimInProgress> {
    if (!(await this.deps.liveness.ensure())) {
      throw new Error('this relay does not hold its liveness lock; not claiming');
    }
    const started = performance.now();
    const claim = await claimBatchCommitting(this.deps.store, {
      relayId: this.options.relayId,
      cursor: this.cursor,
      maxTenants: this.options.tenantsPerClaim,
      minRowsPerTenant: MIN_ROWS_PER_TENANT,
      batchSize: this.options.batchSize,
      leaseMs: this.options.leaseMs,
      skippedTenants: this.skippedTenants(),
      inFlight: [...this.deps.inFlightIds],
    });
    const { rows } = claim;
    this.deps.observer.claimed(rows.length, performance.now() - started);
    for (const row of rows) this.deps.inFlightIds.add(row.id);
    // Next claim starts after the last tenant served: tenants take turns.
    this.cursor = rows[0]?.next_cursor ?? '';
    return claim;
  }

  /** Tenants the next claim must skip: paused, or throttled with no token left. */
  private skippedTenants(): readonly string[] {
    const blocked = this.deps.throttle.blocked();
    const paused = this.deps.gate.pausedTenants();
    return blocked.length === 0 ? paused : [...new Set([...paused, ...blocked])];
  }
}
