/**
 * The relay: claims committed outbox rows, publishes them, and records each
 * as published only after the broker confirms it.
 *
 * One pass (`runOnce`) is claim → gate check → publish → settle. The loop
 * (`start`) overlaps passes: while one batch waits for confirms, the next is
 * claimed, up to `batchesInFlight` batches. Claims happen one at a time and a
 * batch's messages are handed to the publisher before the next claim, so rows
 * of one ordering key reach the broker in id order.
 *
 * No transaction or row lock is held while waiting on the broker: the claim is
 * a short statement that leases rows, and settling is another.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import type pg from 'pg';
import { Backoff, backoffDelay, NO_JITTER, SPREAD_JITTER } from '../backoff.js';
import { describeError, type PublishFailureKind } from '../errors.js';
import type { Logger } from '../log/logger.js';
import {
  type ClaimedRow,
  claimBatch,
  deletePublished,
  fetchPayloads,
  markPublished,
  type OutboxStatements,
  type PublishFailure,
  recordFailures,
  releaseLeases,
  sweepLeases,
} from '../outbox/queries.js';
import { type SqlExecutor, toSqlExecutor } from '../outbox/sql-executor.js';
import { ignoreProgress, type RelayProgress } from './progress-monitor.js';
import { PublishOrder, type PublishTurn } from './publish-order.js';
import type { OutgoingMessage, Publisher, PublishResult } from './publisher.js';
import { RelayLiveness } from './relay-liveness.js';
import { ignoreRelayEvents, type RelayObserver } from './relay-observer.js';
import type { TenantGate } from './tenant-gate.js';
import { TenantThrottle } from './tenant-throttle.js';
import { WakeSignal } from './wake-signal.js';

/** While the publisher is not ready: 50 ms doubling to 2 s. */
const BROKER_WAIT = { firstMs: 50, maxMs: 2000, jitter: NO_JITTER } as const;
/**
 * After a failed claim: 200 ms doubling to 10 s, jittered, since every relay's
 * claims fail together when the shared database does.
 */
const CLAIM_RETRY = { firstMs: 200, maxMs: 10_000, jitter: SPREAD_JITTER } as const;
/** Between the (at most five) attempts to record a batch's outcome: 200 ms doubling, jittered. */
const SETTLE_RETRY = { firstMs: 200, maxMs: 1600, jitter: SPREAD_JITTER } as const;

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
  pool: pg.Pool;
  statements: OutboxStatements;
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

/** What one pass (or several) did. */
export interface PassResult {
  claimed: number;
  published: number;
  /** Claimed rows left pending unpublished because their tenant is paused. */
  held: number;
  failed: number;
  dead: number;
}

/** Claims failing in a row: since when (epoch ms), how many, the last error. */
export interface ClaimFailure {
  since: number;
  count: number;
  error: string;
}

const EMPTY: PassResult = { claimed: 0, published: 0, held: 0, failed: 0, dead: 0 };

/** Rows read per tenant at least, even when many tenants share a claim. */
const MIN_ROWS_PER_TENANT = 10;

function addResults(a: PassResult, b: PassResult): PassResult {
  return {
    claimed: a.claimed + b.claimed,
    published: a.published + b.published,
    held: a.held + b.held,
    failed: a.failed + b.failed,
    dead: a.dead + b.dead,
  };
}

function toOutgoing(row: ClaimedRow, content: Buffer): OutgoingMessage {
  return {
    id: row.id,
    messageId: row.message_id,
    tenantId: row.tenant_id,
    orderingScope: row.ordering_key ?? row.tenant_id,
    exchange: row.exchange,
    routingKey: row.routing_key,
    content,
    contentType: row.content_type,
    type: row.message_type ?? undefined,
    timestamp: Math.floor(row.created_ms / 1000),
    headers: { ...row.headers, 'x-tenant-id': row.tenant_id },
  };
}

/** Publishes the outbox to the broker; see the module comment. */
export class Relay {
  readonly wake: WakeSignal;
  private readonly db: SqlExecutor;
  private cursor = '';
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  /**
   * Ids of the rows this relay claimed whose batch has not ended. Only this
   * process knows them (a claim writes nothing to a row: it leases the
   * tenant, in tenant_leases); the next claim skips them, so a row is never in
   * two batches of one relay.
   */
  private readonly inFlightIds = new Set<string>();
  /** Bounds the batches in flight (claimed, not yet settled); its counts say how many there are. */
  private readonly limit: LimitFunction;
  /** Rung whenever a batch ends, for a loop waiting for a free slot and for stop(). */
  private readonly batchEnded = new WakeSignal();
  private totals: PassResult = { ...EMPTY };
  private interruptSleep: (() => void) | undefined;
  /** Batches hand their messages to the publisher in claim order. */
  private readonly order = new PublishOrder();
  private lastSweep = 0;
  private readonly throttle = new TenantThrottle();
  private readonly observer: RelayObserver;
  private claimFailure: ClaimFailure | undefined;
  private readonly liveness: RelayLiveness;
  private readonly progress: RelayProgress;

  constructor(
    private readonly options: RelayOptions,
    private readonly deps: RelayDeps,
  ) {
    this.wake = deps.wake ?? new WakeSignal();
    this.db = toSqlExecutor(deps.pool);
    this.observer = deps.observer ?? ignoreRelayEvents;
    this.limit = pLimit(options.batchesInFlight);
    this.progress = deps.progress ?? ignoreProgress;
    this.liveness = new RelayLiveness({
      pool: deps.pool,
      statements: deps.statements,
      relayId: options.relayId,
      logger: deps.logger,
    });
  }

  /** Rows claimed by this relay whose batch has not ended yet. */
  inFlight(): number {
    return this.inFlightIds.size;
  }

  /** Set while the loop's claims fail, from the first failure in a row; undefined once one succeeds. */
  claimFailing(): ClaimFailure | undefined {
    return this.claimFailure;
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
    const claimedAt = Date.now();
    const rows = await this.claim();
    if (rows.length === 0) return { ...EMPTY };
    return this.publishAndSettle(rows, this.order.takeTurn(), claimedAt);
  }

  /**
   * Runs passes until nothing is claimable or a pass publishes nothing (the
   * broker is away, or every row failed), so it never spins
   * (`outbox-relay run --once`).
   */
  async drain(): Promise<PassResult> {
    let total: PassResult = { ...EMPTY };
    for (;;) {
      const result = await this.runOnce();
      total = addResults(total, result);
      if (result.published === 0) return total;
    }
  }

  /** Starts the loop in the background; `stop()` ends it. */
  start(): void {
    if (this.loopDone) return;
    this.stopping = false;
    const progress = this.progress;
    this.loopDone = this.loop().catch((error: unknown) => {
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
    this.stopping = true;
    this.interruptSleep?.();
    this.wake.ring();
    // One deadline for everything: the loop's last claim and the batches in flight.
    const deadline = Date.now() + this.options.shutdownTimeoutMs;
    const loopFinished = await this.within(this.loopDone ?? Promise.resolve(), deadline);
    if (loopFinished) this.loopDone = undefined;
    const batchesFinished = await this.batchesDone(deadline);
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
      await releaseLeases(this.db, this.deps.statements, this.options.relayId);
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

  /** How long to sleep when caught up: until the full poll, or a throttled tenant's next token. */
  private idleWaitMs(): number {
    return Math.min(
      this.options.pollIntervalMs,
      this.throttle.nextTokenInMs() ?? Number.POSITIVE_INFINITY,
    );
  }

  /** Once per lease period, deletes expired tenant leases (any relay's: they mean nothing). */
  private async sweepExpiredLeases(): Promise<void> {
    const now = Date.now();
    if (now - this.lastSweep < this.options.leaseMs) return;
    this.lastSweep = now;
    try {
      const swept = await sweepLeases(this.db, this.deps.statements);
      if (swept > 0) this.deps.logger.debug('swept expired tenant leases', { count: swept });
    } catch (error) {
      this.deps.logger.warn('cannot sweep expired tenant leases; will try again', { error });
    }
  }

  /** Batches claimed and not yet ended (running or waiting for a slot). */
  private batchesInFlight(): number {
    return this.limit.activeCount + this.limit.pendingCount;
  }

  /** Resolves true once no batch is in flight, false if `deadline` comes first. */
  private async batchesDone(deadline: number): Promise<boolean> {
    while (this.batchesInFlight() > 0) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.batchEnded.wait(left);
    }
    return true;
  }

  /** Resolves true if `promise` settles before `deadline`, false otherwise. */
  private async within(promise: Promise<unknown>, deadline: number): Promise<boolean> {
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

  /** Sleeps `ms`, but wakes at once when the relay stops (not on hints). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.interruptSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.interruptSleep = done;
    });
  }

  private async loop(): Promise<void> {
    const progress = this.progress;
    // A local poll of publisher.isReady() (the publisher reconnects with its
    // own jittered backoff), so no server sees these: no jitter.
    const brokerWait = new Backoff(BROKER_WAIT);
    let gateClosed = false;
    while (!this.stopping) {
      if (this.deps.gate.closed()) {
        // The flag source is down and configured to fail closed: hold everything
        // (a flag change, such as the source coming back, rings the wake signal).
        if (!gateClosed)
          this.deps.logger.warn('tenant flags unavailable and failing closed: claiming paused');
        gateClosed = true;
        await progress.waiting('flags-closed', this.wake.wait(500));
        continue;
      }
      if (gateClosed) this.deps.logger.info('tenant flags available again: claiming resumed');
      gateClosed = false;
      if (!this.deps.publisher.isReady()) {
        // Never claim what cannot be published: wait for the publisher to
        // reconnect (or the broker to unblock). Rows stay pending meanwhile.
        if (brokerWait.failures === 0)
          this.deps.logger.warn('broker not ready; claiming paused until it is');
        await progress.waiting('broker-not-ready', this.sleep(brokerWait.next()));
        continue;
      }
      if (brokerWait.failures > 0) this.deps.logger.info('broker ready again; claiming resumed');
      brokerWait.reset();
      await this.sweepExpiredLeases();
      if (this.batchesInFlight() >= this.options.batchesInFlight) {
        await this.batchEnded.wait(1000);
        continue;
      }
      let rows: ClaimedRow[];
      const claimedAt = Date.now();
      try {
        rows = await this.claim();
        this.claimFailure = undefined;
      } catch (error) {
        const count = (this.claimFailure?.count ?? 0) + 1;
        this.claimFailure = {
          since: this.claimFailure?.since ?? Date.now(),
          count,
          error: describeError(error),
        };
        const delay = backoffDelay(CLAIM_RETRY, count);
        this.deps.logger.error('claim failed; retrying', { error, retryInMs: Math.round(delay) });
        await progress.waiting('claim-failed', this.wake.wait(delay));
        continue;
      }
      if (rows.length === 0) {
        await progress.waiting('caught-up', this.wake.wait(this.idleWaitMs()));
        continue;
      }
      progress.beat('claimed');
      const turn = this.order.takeTurn();
      void this.limit(() => this.publishAndSettle(rows, turn, claimedAt))
        .catch((error: unknown) => {
          // The outcome could not be recorded: the rows are still pending, and
          // once out of the in-flight set this relay (which still holds the
          // tenant) claims them again — published again, at least once.
          this.landed(rows);
          this.deps.logger.error('batch failed', { error });
        })
        .finally(() => this.batchEnded.ring());
      if (rows.length < this.options.batchSize && !rows[0]?.more) {
        // Caught up: sleep until a hint arrives, a throttled tenant earns a
        // token, or the full poll is due.
        await progress.waiting('caught-up', this.wake.wait(this.idleWaitMs()));
      }
    }
  }

  /** Splits a batch (in id order) into rows to publish now and rows to hold. */
  private async applyGate(
    rows: readonly ClaimedRow[],
  ): Promise<{ held: ClaimedRow[]; toPublish: ClaimedRow[] }> {
    const perTenant = new Map<string, number>();
    for (const row of rows) perTenant.set(row.tenant_id, (perTenant.get(row.tenant_id) ?? 0) + 1);
    const decisions = await this.deps.gate.decide([...perTenant.keys()]);
    const budget = new Map<string, number>();
    for (const [tenant, count] of perTenant) {
      const decision = decisions.get(tenant);
      budget.set(
        tenant,
        decision?.paused ? 0 : this.throttle.take(tenant, decision?.ratePerSecond, count),
      );
    }
    const held: ClaimedRow[] = [];
    const toPublish: ClaimedRow[] = [];
    for (const row of rows) {
      const left = budget.get(row.tenant_id) ?? 0;
      if (left > 0) {
        budget.set(row.tenant_id, left - 1);
        toPublish.push(row);
      } else {
        held.push(row);
      }
    }
    return { held, toPublish };
  }

  /** Tenants the next claim must skip: paused, or throttled with no token left. */
  private skippedTenants(): readonly string[] {
    const blocked = this.throttle.blocked();
    const paused = this.deps.gate.pausedTenants();
    return blocked.length === 0 ? paused : [...new Set([...paused, ...blocked])];
  }

  /** Takes rows whose batch has ended, however it ended, out of the in-flight set. */
  private landed(rows: readonly ClaimedRow[]): void {
    for (const row of rows) this.inFlightIds.delete(row.id);
  }

  private async claim(): Promise<ClaimedRow[]> {
    if (!(await this.liveness.ensure())) {
      throw new Error('this relay does not hold its liveness lock; not claiming');
    }
    const started = performance.now();
    const rows = await claimBatch(this.deps.pool, this.deps.statements, {
      relayId: this.options.relayId,
      cursor: this.cursor,
      maxTenants: this.options.tenantsPerClaim,
      minRowsPerTenant: MIN_ROWS_PER_TENANT,
      batchSize: this.options.batchSize,
      leaseMs: this.options.leaseMs,
      pausedTenants: this.skippedTenants(),
      inFlight: [...this.inFlightIds],
    });
    this.observer.claimed(rows.length, performance.now() - started);
    for (const row of rows) this.inFlightIds.add(row.id);
    // Next claim starts after the last tenant served: tenants take turns.
    this.cursor = rows[0]?.next_cursor ?? '';
    return rows;
  }

  /**
   * Fencing: whether this relay may still publish what it claimed at
   * `claimedAt`. Not once it knows its liveness lock lost (its tenants may
   * have failed over already), nor past the lease that claim took (after a
   * stall, another relay may hold the tenants).
   */
  private mayPublish(claimedAt: number): string | undefined {
    if (!this.liveness.held()) return 'the liveness lock is lost';
    if (Date.now() >= claimedAt + this.options.leaseMs) return 'the claim lease has expired';
    return undefined;
  }

  private async publishAndSettle(
    claimed: readonly ClaimedRow[],
    turn: PublishTurn,
    claimedAt: number,
  ): Promise<PassResult> {
    let rows: readonly ClaimedRow[] = claimed;
    let held: ClaimedRow[] = [];
    let toPublish: readonly ClaimedRow[] = [];
    let sent: Promise<PublishResult[]>;
    let publishStarted = 0;
    try {
      const payloads = await fetchPayloads(
        this.deps.pool,
        this.deps.statements,
        claimed.map((row) => row.id),
      );
      // A row deleted since the claim (purged by an operator) is simply gone.
      rows = claimed.filter((row) => payloads.has(row.id));
      await turn.ready;
      // Ask the gate right before publishing, per distinct tenant: a flip
      // takes effect within one batch. Paused tenants' rows are held; a
      // throttled tenant publishes its oldest rows up to its budget.
      ({ held, toPublish } = await this.applyGate(rows));
      const fenced = this.mayPublish(claimedAt);
      if (fenced !== undefined && toPublish.length > 0) {
        // Left pending: whoever holds the tenants now publishes them.
        this.deps.logger.warn('not publishing a claimed batch: fenced', {
          reason: fenced,
          rows: toPublish.length,
        });
        held = [...held, ...toPublish];
        toPublish = [];
      }

      // publish() enqueues synchronously; only then may the next batch enqueue.
      publishStarted = performance.now();
      sent = this.deps.publisher.publish(
        toPublish.map((row) => toOutgoing(row, payloads.get(row.id) as Buffer)),
      );
    } finally {
      turn.done();
    }
    const results = await sent;
    const publishMs = performance.now() - publishStarted;

    const published: string[] = [];
    const publishedCreatedAt: Date[] = [];
    const failures: PublishFailure[] = [];
    const failureKinds: PublishFailureKind[] = [];
    results.forEach((result, i) => {
      const row = toPublish[i] as ClaimedRow;
      if (result.ok) {
        published.push(row.id);
        publishedCreatedAt.push(new Date(row.created_ms));
      } else {
        failureKinds.push(result.error.kind);
        failures.push({
          id: row.id,
          error: result.error.message,
          countsAsAttempt: result.error.countsAsAttempt,
          permanent: result.error.permanent,
        });
      }
    });
    // Held rows need no write: they are pending as they were, and leave this
    // relay's in-flight set below, so the next claim may take them again.
    let dead: string[] = [];
    try {
      dead = await this.settle(published, failures);
    } finally {
      // What the broker said counts even if recording it failed (the rows are
      // then published again, and counted again: at least once).
      this.observer.batchSettled({
        publishMs,
        publishedCreatedAt,
        failures: failureKinds,
        dead: dead.length,
        held: held.length,
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
    const result: PassResult = {
      claimed: rows.length,
      published: published.length,
      held: held.length,
      failed: failures.length,
      dead: dead.length,
    };
    this.totals = addResults(this.totals, result);
    return result;
  }

  /**
   * Records the outcome of a batch. Retried a few times: if it never lands,
   * the rows are still pending and are claimed and published again
   * (at-least-once).
   */
  private async settle(published: string[], failures: PublishFailure[]): Promise<string[]> {
    const { statements } = this.deps;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.options.retentionMs > 0) await markPublished(this.db, statements, published);
        else await deletePublished(this.db, statements, published);
        published = [];
        return await recordFailures(this.db, statements, failures, this.options.maxAttempts);
      } catch (error) {
        if (attempt >= 5) {
          this.deps.logger.error(
            'cannot record publish results; the rows will be published again',
            {
              error: describeError(error),
            },
          );
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, backoffDelay(SETTLE_RETRY, attempt)));
      }
    }
  }
}
