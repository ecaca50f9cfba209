/**
 * The relay: claims committed outbox rows, publishes them, and records each
 * as published only after the broker confirms it.
 *
 * One pass (`runOnce`) is claim → gate check → publish → settle. The loop
 * (`start`) overlaps passes: while one batch waits for confirms, the next is
 * claimed, up to `batchesInFlight` batches. Claims happen one at a time and
 * each batch takes its publish turn as soon as it is claimed, so rows of one
 * ordering key reach the broker in id order.
 *
 * No transaction or row lock is held while waiting on the broker: the claim is
 * a short statement that leases tenants, and settling is another.
 *
 * This file is the public class and its wiring; each job has a file:
 * - `claim-loop.ts`: when to claim (flags closed, broker not ready, slots
 *   full, claim failures, caught up), each wait with its backoff;
 * - `batch-claimer.ts`: what a claim asks for (cursor, skipped tenants, rows
 *   in flight) behind the liveness lock;
 * - `batch-pipeline.ts`: one batch, turn → gate → fencing → publish →
 *   settle → result;
 * - `batch-settler.ts`: recording a batch's outcome, retried;
 * - `publish-order.ts`: the turns that keep batches in claim order;
 * - `batches-in-flight.ts`: how many batches overlap, and waiting for them.
 */
import type { Logger } from '../log/logger.js';
import type { ClaimInProgress } from '../outbox/claim.js';
import { releaseLeases } from '../outbox/leases.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import { BatchClaimer } from './batch-claimer.js';
import { BatchPipeline, type PassOutcome, type PassResult } from './batch-pipeline.js';
import { BatchSettler } from './batch-settler.js';
import { BatchesInFlight } from './batches-in-flight.js';
import { type ClaimFailure, ClaimLoop } from './claim-loop.js';
import { ignoreProgress, type RelayProgress } from './progress-monitor.js';
import { PublishOrder, type PublishTurn } from './publish-order.js';
import type { Publisher } from './publisher.js';
import { RelayLiveness } from './relay-liveness.js';
import { ignoreRelayEvents, type RelayObserver } from './relay-observer.js';
import type { TenantGate } from './tenant-gate.js';
import { TenantThrottle } from './tenant-throttle.js';
import { WakeSignal } from './wake-signal.js';

export type { PassResult } from './batch-pipeline.js';
export type { ClaimFailure } from './claim-loop.js';

/** What {@link Relay.drain} did: its passes' totals, and what it left unpublished. */
export interface DrainResult extends PassResult {
  /**
   * Rows that failed to publish in this run and were not published by a
   * later pass of it: pending for a retry with backoff, or dead. `failed`
   * counts every failed publish, including those a later pass made good (a
   * broker connection lost mid-batch fails the messages on it, and the next
   * pass publishes them).
   */
  unpublished: number;
}

/** Tuning of one relay; see docs/configuration.md. */
export interface RelayOptions {
  /** Unique per process; leases carry it. */
  relayId: string;
  batchSize: number;
  batchesInFlight: number;
  tenantsPerClaim: number;
  leaseMs: number;
  retentionMs: number;
  maxAttempts: number;
  pollIntervalMs: number;
  shutdownTimeoutMs: number;
}

/** What the relay works with: the database, a publisher, a tenant gate. */
export interface RelayDeps {
  /** The outbox (its pool and schema). */
  store: OutboxStore;
  publisher: Publisher;
  gate: TenantGate;
  logger: Logger;
  /** Rung by the sequence watcher, NOTIFY and flag changes. */
  wake?: WakeSignal;
  /** Told of every claim and settled batch (metrics). */
  observer?: RelayObserver;
  /** Told how the loop gets round, for /healthz. */
  progress?: RelayProgress;
}

const EMPTY: PassResult = { claimed: 0, published: 0, held: 0, failed: 0, dead: 0 };

/** The counts of `outcome`, without its row ids. */
function countsOf(outcome: PassResult): PassResult {
  const { claimed, published, held, failed, dead } = outcome;
  return { claimed, published, held, failed, dead };
}

function addResults(a: PassResult, b: PassResult): PassResult {
  return {
    claimed: a.claimed + b.claimed,
    published: a.published + b.published,
    held: a.held + b.held,
    failed: a.failed + b.failed,
    dead: a.dead + b.dead,
  };
}

/** Resolves true if `promise` settles before `deadline`, false otherwise. */
async function within(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    }),
  ]);
  clearTimeout(timer);
  return result;
}

/** Publishes the outbox to the broker; see the module comment. */
export class Relay {
  readonly wake: WakeSignal;
  private loopDone: Promise<void> | undefined;
  /**
   * Ids of the rows this relay claimed whose batch has not ended. Only this
   * process knows them (a claim writes nothing to a row: it leases the
   * tenant, in tenant_leases); the next claim skips them, so a row is never in
   * two batches of one relay. The claimer adds them, the pipeline takes them
   * out when their batch ends.
   */
  private readonly inFlightIds = new Set<string>();
  /** Batches hand their messages to the publisher in claim order. */
  private readonly order = new PublishOrder();
  private readonly batches: BatchesInFlight;
  private totals: PassResult = { ...EMPTY };
  private readonly throttle = new TenantThrottle();
  private readonly liveness: RelayLiveness;
  private readonly progress: RelayProgress;
  private readonly claimer: BatchClaimer;
  private readonly pipeline: BatchPipeline;
  private readonly loop: ClaimLoop;

  constructor(
    private readonly options: RelayOptions,
    private readonly deps: RelayDeps,
  ) {
    this.wake = deps.wake ?? new WakeSignal();
    const observer = deps.observer ?? ignoreRelayEvents;
    this.batches = new BatchesInFlight(options.batchesInFlight);
    this.progress = deps.progress ?? ignoreProgress;
    this.liveness = new RelayLiveness({
      store: deps.store,
      relayId: options.relayId,
      logger: deps.logger,
    });
    const { store, publisher, gate, logger } = deps;
    const { throttle, liveness, inFlightIds } = this;
    this.claimer = new BatchClaimer(options, {
      store,
      gate,
      throttle,
      liveness,
      observer,
      inFlightIds,
    });
    const settler = new BatchSettler(options, { store, logger });
    this.pipeline = new BatchPipeline(options, {
      publisher,
      gate,
      throttle,
      liveness,
      settler,
      observer,
      logger,
      inFlightIds,
    });
    this.loop = new ClaimLoop(options, {
      publisher,
      gate,
      logger,
      wake: this.wake,
      progress: this.progress,
      throttle,
      batches: this.batches,
      claim: () => this.claimer.claim(),
      startBatch: (claim, claimedAt) => this.startBatch(claim, claimedAt),
    });
  }

  /** Rows claimed by this relay whose batch has not ended yet. */
  inFlight(): number {
    return this.inFlightIds.size;
  }

  /** Set while the loop's claims fail, from the first failure in a row; undefined once one succeeds. */
  claimFailing(): ClaimFailure | undefined {
    return this.loop.claimFailing();
  }

  /** Tenants currently out of rate budget (the rate-limit flag). */
  throttledTenants(): number {
    return this.throttle.blocked().length;
  }

  /** Totals since the relay was created. */
  stats(): PassResult {
    return { ...this.totals };
  }

  /** One pass: claim a batch, publish it, settle it. Returns what it did. */
  async runOnce(): Promise<PassResult> {
    return countsOf(await this.pass());
  }

  /** {@link runOnce}, with the ids of the rows the pass published and of those that failed. */
  private async pass(): Promise<PassOutcome> {
    const claimedAt = Date.now();
    const claim = await this.claimer.claim();
    if (claim.rows.length === 0) {
      await claim.committed;
      return { ...EMPTY, publishedIds: [], failedIds: [] };
    }
    // The batch publishes while the claim commits (as in the loop); a failed
    // commit fails the pass once the batch has settled, like a failed claim.
    const outcome = await this.runBatch(claim, this.order.takeTurn(), claimedAt);
    await claim.committed;
    return outcome;
  }

  /**
   * Runs passes until nothing is claimable or a pass publishes nothing (the
   * broker is away, or every row failed), so it never spins
   * (`outbox-relay run --once`).
   */
  async drain(): Promise<DrainResult> {
    let total: PassResult = { ...EMPTY };
    // Rows that failed in this run and no later pass published.
    const unpublished = new Set<string>();
    for (;;) {
      const outcome = await this.pass();
      total = addResults(total, outcome);
      for (const id of outcome.failedIds) unpublished.add(id);
      for (const id of outcome.publishedIds) unpublished.delete(id);
      if (outcome.published === 0) return { ...total, unpublished: unpublished.size };
    }
  }

  /** Starts the loop in the background; `stop()` ends it. */
  start(): void {
    if (this.loopDone) return;
    const progress = this.progress;
    this.loopDone = this.loop.run().catch((error: unknown) => {
      // /healthz turns 503, and the process-level handler ends the process
      // (bounded shutdown, exit 1) so that the orchestrator restarts it.
      progress.ended(error);
      throw error;
    });
  }

  /**
   * Stops claiming, waits up to the shutdown timeout for batches in flight,
   * then gives back every lease still held and the liveness lock. Does not
   * close the publisher or the pool. Also ends a relay that only ran passes.
   */
  async stop(): Promise<void> {
    this.loop.stop();
    // One deadline for everything: the loop's last claim and the batches in flight.
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    const loopFinished = await within(this.loopDone ?? Promise.resolve(), deadline);
    if (loopFinished) this.loopDone = undefined;
    const batchesFinished = await this.batches.allEnded(deadline);
    if (!loopFinished || !batchesFinished) {
      this.deps.logger.warn('shutdown timeout: releasing leases of unconfirmed messages', {
        unconfirmed: this.inFlightIds.size,
      });
    }
    await this.releaseAll();
    await this.liveness.stop();
  }

  /**
   * Gives back this relay's tenant leases, so other relays may take those
   * tenants at once; rows not confirmed yet are published again (at least once).
   */
  async releaseAll(): Promise<void> {
    try {
      await releaseLeases(this.deps.store, this.options.relayId);
      if (this.inFlightIds.size > 0) {
        this.deps.logger.info('released tenant leases', { unconfirmed: this.inFlightIds.size });
      }
      this.inFlightIds.clear();
    } catch (error) {
      this.deps.logger.error('cannot release tenant leases; they expire on their own', {
        error,
        unconfirmed: this.inFlightIds.size,
      });
    }
  }

  /** The loop's way to run a claimed batch: in a slot, in the background, in claim order. */
  private startBatch(claim: ClaimInProgress, claimedAt: number): void {
    const turn = this.order.takeTurn();
    this.batches.start(
      () => this.runBatch(claim, turn, claimedAt),
      (error: unknown) => {
        // The outcome could not be recorded: the rows are still pending, and
        // once out of the in-flight set this relay (which still holds the
        // tenant) claims them again — published again, at least once.
        this.pipeline.landed(claim.rows);
        this.deps.logger.error('batch failed', { error });
      },
    );
  }

  /** One batch through the pipeline, counted in the totals. */
  private async runBatch(
    claim: ClaimInProgress,
    turn: PublishTurn,
    claimedAt: number,
  ): Promise<PassOutcome> {
    const outcome = await this.pipeline.run(claim.rows, turn, claimedAt, claim.commitFailed);
    this.totals = addResults(this.totals, outcome);
    return outcome;
  }
}
