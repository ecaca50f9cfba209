/**
 * The relay's reporting port: what it did, as it does it. The Prometheus
 * adapter (src/metrics) implements it; the relay itself knows no metrics
 * library. Every method is called on the hot path and must be cheap.
 */
import type { PublishFailureKind } from '../errors.js';

/** The outcome of one published batch, once the broker has answered for all of it. */
export interface BatchOutcome {
  /** From handing the batch to the publisher to the last confirm. */
  publishMs: number;
  /** `created_at` of each row the broker confirmed: commit-to-publish latency. */
  publishedCreatedAt: readonly Date[];
  /** One entry per message that failed, counted or not. */
  failures: readonly PublishFailureKind[];
  /** Rows that reached the maximum number of attempts in this batch. */
  dead: number;
  /** Claimed rows left pending unpublished, by why. */
  held: HeldRows;
}

/**
 * Claimed rows a batch left pending on purpose, by reason: the tenant is
 * paused (kill switch), throttled (over its rate budget), or the batch was
 * fenced (this relay lost its liveness lock, its claim lease ran out, or its
 * claim did not commit).
 */
export interface HeldRows {
  paused: number;
  throttled: number;
  fenced: number;
}

/** Receives the relay's events. */
export interface RelayObserver {
  /** One claim statement ran (successfully) and returned `rows` rows. */
  claimed(rows: number, durationMs: number): void;
  /** One batch was settled. */
  batchSettled(outcome: BatchOutcome): void;
}

/** Observes nothing. */
export const ignoreRelayEvents: RelayObserver = {
  claimed: () => undefined,
  batchSettled: () => undefined,
};
