/**
 * When the relay claims: the loop behind `Relay.start()`. It claims only when
 * the tenant flags are available (or fail open), the publisher is ready and a
 * batch slot is free; it starts each claimed batch in the background and
 * claims again at once while claims come back full. Otherwise it waits, each
 * wait bounded, interruptible by `stop()`, and reported to the progress
 * monitor:
 *
 * - flags failing closed: until a flag change rings the wake signal (or 500 ms);
 * - broker not ready: 50 ms doubling to 2 s, no jitter (a local poll);
 * - claim failed: 200 ms doubling to 10 s, jittered (every relay's claims fail
 *   together when the shared database does), or until a hint;
 * - caught up: until a hint, a throttled tenant's next token, or the full poll.
 */
import { Backoff, backoffDelay, NO_JITTER, SPREAD_JITTER } from '../backoff.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ClaimInProgress } from '../outbox/claim.js';
import type { BatchesInFlight } from './batches-in-flight.js';
import type { RelayProgress } from './progress-monitor.js';
import type { Publisher } from './publisher.js';
import type { TenantGate } from './tenant-gate.js';
import type { TenantThrottle } from './tenant-throttle.js';
import type { WakeSignal } from './wake-signal.js';

/** While the publisher is not ready: 50 ms doubling to 2 s. */
const BROKER_WAIT = { firstMs: 50, maxMs: 2000, jitter: NO_JITTER } as const;
/**
 * After a failed claim: 200 ms doubling to 10 s, jittered, since every relay's
 * claims fail together when the shared database does.
 */
const CLAIM_RETRY = { firstMs: 200, maxMs: 10_000, jitter: SPREAD_JITTER } as const;

/** Claims failing in a row: since when (epoch ms), how many, the last error. */
export interface ClaimFailure {
  since: number;
  count: number;
  error: string;
}

/** Settings of {@link ClaimLoop}: `RelayOptions`' of the same names. */
export interface ClaimLoopOptions {
  batchSize: number;
  pollIntervalMs: number;
}

/** What {@link ClaimLoop} works with; all shared with the rest of the relay. */
export interface ClaimLoopDeps {
  publisher: Publisher;
  gate: TenantGate;
  logger: Logger;
  wake: WakeSignal;
  progress: RelayProgress;
  throttle: TenantThrottle;
  batches: BatchesInFlight;
  /** Claims the next batch, its commit under way; rejects if the claim fails. */
  claim: () => Promise<ClaimInProgress>;
  /** Starts a claimed batch (its commit under way) in the background, in a slot of `batches`. */
  startBatch: (claim: ClaimInProgress, claimedAt: number) => void;
}

/** Decides when to claim; see the module comment. */
export class ClaimLoop {
  private stopping = false;
  private interruptSleep: (() => void) | undefined;
  private claimFailure: ClaimFailure | undefined;

  constructor(
    private readonly options: ClaimLoopOptions,
    private readonly deps: ClaimLoopDeps,
  ) {}

  /** Set while claims fail, from the first failure in a row; undefined once one succeeds. */
  claimFailing(): ClaimFailure | undefined {
    return this.claimFailure;
  }

  /** Ends the loop soon: its current wait ends at once, and it claims no more. */
  stop(): void {
    this.stopping = true;
    this.interruptSleep?.();
    this.deps.wake.ring();
  }

  /** Runs until `stop()`; rejects only on a bug (every failure it knows is retried). */
  async run(): Promise<void> {
    this.stopping = false;
    const progress = this.deps.progress;
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
        await progress.waiting('flags-closed', this.deps.wake.wait(500));
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
      if (this.deps.batches.full()) {
        await this.deps.batches.waitForEnd(1000);
        continue;
      }
      let claim: ClaimInProgress;
      const claimedAt = Date.now();
      try {
        claim = await this.deps.claim();
      } catch (error) {
        await this.claimFailed(error);
        continue;
      }
      const { rows } = claim;
      // The batch publishes while the claim commits, so the commit's round
      // trip and WAL flush are not on an event's way to the broker; the next
      // claim waits for the commit. A failed commit may have written no
      // lease: the loop backs off as after any failed claim, a batch that
      // has not reached its publish turn yet is fenced (batch-pipeline.ts),
      // and one already handed to the publisher settles what the broker
      // confirms (another relay that takes its tenants meanwhile may publish
      // the same rows: at least once).
      if (rows.length > 0) {
        progress.beat('claimed');
        this.deps.startBatch(claim, claimedAt);
      }
      try {
        await claim.committed;
        this.claimFailure = undefined;
      } catch (error) {
        await this.claimFailed(error);
        continue;
      }
      if (rows.length < this.options.batchSize && !rows[0]?.more) {
        // Caught up: sleep until a hint arrives, a throttled tenant earns a
        // token, or the full poll is due.
        await progress.waiting('caught-up', this.deps.wake.wait(this.idleWaitMs()));
      }
    }
  }

  /** Records a failed claim (or claim commit) and waits out its backoff, or until a hint. */
  private async claimFailed(error: unknown): Promise<void> {
    const count = (this.claimFailure?.count ?? 0) + 1;
    this.claimFailure = {
      since: this.claimFailure?.since ?? Date.now(),
      count,
      error: describeError(error),
    };
    const delay = backoffDelay(CLAIM_RETRY, count);
    this.deps.logger.error('claim failed; retrying', { error, retryInMs: Math.round(delay) });
    await this.deps.progress.waiting('claim-failed', this.deps.wake.wait(delay));
  }

  /** How long to sleep when caught up: until the full poll, or a throttled tenant's next token. */
  private idleWaitMs(): number {
    return Math.min(
      this.options.pollIntervalMs,
      this.deps.throttle.nextTokenInMs() ?? Number.POSITIVE_INFINITY,
    );
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
}
