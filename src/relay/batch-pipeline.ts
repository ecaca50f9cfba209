/**
 * One claimed batch, from claim to settled: wait for its publish turn → ask
 * the tenant gate → check the fencing → publish → settle → report. The claim
 * returned the rows with their payloads; batches overlap, a batch waiting for
 * its confirms while the next is claimed and handed over.
 *
 * Whatever the outcome, the batch's rows leave the relay's in-flight set when
 * it ends; rows not recorded as published or dead are pending again, and the
 * next claim may take them.
 */
import type { Logger } from '../log/logger.js';
import type { ClaimedRow } from '../outbox/claim.js';
import { type BatchSettler, sortResults } from './batch-settler.js';
import type { PublishTurn } from './publish-order.js';
import type { OutgoingMessage, Publisher, PublishResult } from './publisher.js';
import type { RelayLiveness } from './relay-liveness.js';
import type { HeldRows, RelayObserver } from './relay-observer.js';
import type { TenantGate } from './tenant-gate.js';
import type { TenantThrottle } from './tenant-throttle.js';

/** What one pass (or several) did. */
export interface PassResult {
  claimed: number;
  published: number;
  /** Claimed rows left pending unpublished: paused or throttled tenants, or a fenced batch. */
  held: number;
  failed: number;
  dead: number;
}

/**
 * One batch's {@link PassResult}, with the ids of the rows it published and
 * of those that failed: a row that failed may be published by a later pass
 * of the same run (`Relay.drain`). What the observer is told is
 * relay-observer.ts's `BatchOutcome`.
 */
export interface PassOutcome extends PassResult {
  publishedIds: readonly string[];
  failedIds: readonly string[];
}

/** Settings of {@link BatchPipeline}: `RelayOptions`' of the same names. */
export interface BatchPipelineOptions {
  leaseMs: number;
}

/** What {@link BatchPipeline} works with; all shared with the rest of the relay. */
export interface BatchPipelineDeps {
  publisher: Publisher;
  gate: TenantGate;
  throttle: TenantThrottle;
  liveness: RelayLiveness;
  settler: BatchSettler;
  observer: RelayObserver;
  logger: Logger;
  /** The relay's in-flight row ids: a batch's rows leave it when the batch ends. */
  inFlightIds: Set<string>;
}

function toOutgoing(row: ClaimedRow): OutgoingMessage {
  return {
    id: row.id,
    messageId: row.message_id,
    tenantId: row.tenant_id,
    orderingScope: row.ordering_key ?? row.tenant_id,
    exchange: row.exchange,
    routingKey: row.routing_key,
    content: row.payload,
    contentType: row.content_type,
    type: row.message_type ?? undefined,
    timestamp: Math.floor(row.created_ms / 1000),
    headers: { ...row.headers, 'x-tenant-id': row.tenant_id },
  };
}

/** Takes claimed batches through to settled; see the module comment. */
export class BatchPipeline {
  constructor(
    private readonly options: BatchPipelineOptions,
    private readonly deps: BatchPipelineDeps,
  ) {}

  /**
   * Publishes and settles `claimed` (claimed at `claimedAt`, epoch ms, by a
   * claim whose commit may still be under way: `commitFailed` says whether it
   * is known to have failed), handing it to the publisher in `turn`. Rejects
   * if the outcome could not be recorded; the rows are then still in the
   * in-flight set (see `landed`).
   */
  async run(
    claimed: readonly ClaimedRow[],
    turn: PublishTurn,
    claimedAt: number,
    commitFailed: () => boolean = () => false,
  ): Promise<PassOutcome> {
    let held: HeldRows = { paused: 0, throttled: 0, fenced: 0 };
    let toPublish: readonly ClaimedRow[] = [];
    let sent: Promise<PublishResult[]>;
    let publishStarted = 0;
    try {
      await turn.ready;
      // Ask the gate right before publishing, per distinct tenant: a flip
      // takes effect within one batch. Paused tenants' rows are held; a
      // throttled tenant publishes its oldest rows up to its budget.
      ({ held, toPublish } = await this.applyGate(claimed));
      const fenced = this.mayPublish(claimedAt, commitFailed());
      if (fenced !== undefined && toPublish.length > 0) {
        // Left pending: whoever holds the tenants now publishes them.
        this.deps.logger.warn('not publishing a claimed batch: fenced', {
          reason: fenced,
          rows: toPublish.length,
        });
        held = { ...held, fenced: toPublish.length };
        toPublish = [];
      }

      // publish() enqueues synchronously; only then may the next batch enqueue.
      publishStarted = performance.now();
      sent = this.deps.publisher.publish(toPublish.map(toOutgoing));
    } finally {
      turn.done();
    }
    const results = await sent;
    const publishMs = performance.now() - publishStarted;

    const { published, publishedCreatedAt, failures, failureKinds } = sortResults(
      toPublish,
      results,
    );
    // Held rows need no write: they are pending as they were, and leave this
    // relay's in-flight set below, so the next claim may take them again.
    let dead: string[] = [];
    try {
      dead = await this.deps.settler.settle(published, failures);
    } finally {
      // What the broker said counts even if recording it failed (the rows are
      // then published again, and counted again: at least once).
      this.deps.observer.batchSettled({
        publishMs,
        publishedCreatedAt,
        failures: failureKinds,
        dead: dead.length,
        held,
      });
    }
    this.landed(claimed);
    const counted = failures.filter((f) => f.countsAsAttempt);
    if (counted.length > 0) {
      this.deps.logger.warn('messages failed to publish; will retry with backoff', {
        count: counted.length,
        dead: dead.length,
        firstError: counted[0]?.error,
      });
    }
    return {
      claimed: claimed.length,
      published: published.length,
      held: held.paused + held.throttled + held.fenced,
      failed: failures.length,
      dead: dead.length,
      publishedIds: published,
      failedIds: failures.map((f) => f.id),
    };
  }

  /** Takes rows whose batch has ended, however it ended, out of the in-flight set. */
  landed(rows: readonly ClaimedRow[]): void {
    for (const row of rows) this.deps.inFlightIds.delete(row.id);
  }

  /** Splits a batch (in id order) into rows to publish now and rows to hold. */
  private async applyGate(
    rows: readonly ClaimedRow[],
  ): Promise<{ held: HeldRows; toPublish: ClaimedRow[] }> {
    const perTenant = new Map<string, number>();
    for (const row of rows) perTenant.set(row.tenant_id, (perTenant.get(row.tenant_id) ?? 0) + 1);
    const decisions = await this.deps.gate.decide([...perTenant.keys()]);
    const budget = new Map<string, number>();
    for (const [tenant, count] of perTenant) {
      const decision = decisions.get(tenant);
      budget.set(
        tenant,
        decision?.paused ? 0 : this.deps.throttle.take(tenant, decision?.ratePerSecond, count),
      );
    }
    const held: HeldRows = { paused: 0, throttled: 0, fenced: 0 };
    const toPublish: ClaimedRow[] = [];
    for (const row of rows) {
      const left = budget.get(row.tenant_id) ?? 0;
      if (left > 0) {
        budget.set(row.tenant_id, left - 1);
        toPublish.push(row);
      } else if (decisions.get(row.tenant_id)?.paused) {
        held.paused += 1;
      } else {
        held.throttled += 1;
      }
    }
    return { held, toPublish };
  }

  /**
   * Fencing: whether this relay may still publish what it claimed at
   * `claimedAt`. Not once it knows its liveness lock lost (its tenants may
   * have failed over already), nor once it knows the claim's commit failed
   * (its leases may not be written, so another relay may claim the rows), nor
   * past the lease that claim took (after a stall, another relay may hold the
   * tenants).
   */
  private mayPublish(claimedAt: number, commitFailed: boolean): string | undefined {
    if (!this.deps.liveness.held()) return 'the liveness lock is lost';
    if (commitFailed) return 'the claim did not commit';
    if (Date.now() >= claimedAt + this.options.leaseMs) return 'the claim lease has expired';
    return undefined;
  }
}
