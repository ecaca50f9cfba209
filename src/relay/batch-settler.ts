/**
 * Settling a batch: turning what the broker said about each message into the
 * rows' new state. Confirmed rows are deleted (or marked published, when
 * published rows are kept for `OUTBOX_RETENTION`); failed ones get an attempt
 * and a retry time, or go dead. Held rows need no write: they are pending as
 * they were.
 *
 * Recording is retried a few times. If it never lands, the rows are still
 * pending and are claimed and published again (at least once).
 */
import { backoffDelay, SPREAD_JITTER } from '../backoff.js';
import { describeError, type PublishFailureKind } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ClaimedRow } from '../outbox/claim.js';
import type { OutboxStore } from '../outbox/outbox-store.js';
import {
  deletePublished,
  markPublished,
  type PublishFailure,
  recordFailures,
} from '../outbox/settle.js';
import type { PublishResult } from './publisher.js';

/** Between the (at most five) attempts to record a batch's outcome: 200 ms doubling, jittered. */
const SETTLE_RETRY = { firstMs: 200, maxMs: 1600, jitter: SPREAD_JITTER } as const;

/** A batch's publish results, sorted into what to record and what to report. */
export interface SortedResults {
  /** Ids of the rows the broker confirmed. */
  published: string[];
  /** `created_at` of each confirmed row, in the order of `published`. */
  publishedCreatedAt: Date[];
  /** The rows that failed, as recorded. */
  failures: PublishFailure[];
  /** The kind of each failure, in the order of `failures` (for metrics). */
  failureKinds: PublishFailureKind[];
}

/** Pairs `results[i]` with `rows[i]` (the publisher answers in the order it was given). */
export function sortResults(
  rows: readonly ClaimedRow[],
  results: readonly PublishResult[],
): SortedResults {
  const published: string[] = [];
  const publishedCreatedAt: Date[] = [];
  const failures: PublishFailure[] = [];
  const failureKinds: PublishFailureKind[] = [];
  results.forEach((result, i) => {
    const row = rows[i] as ClaimedRow;
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
  return { published, publishedCreatedAt, failures, failureKinds };
}

/** Settings of {@link BatchSettler}: `RelayOptions`' of the same names. */
export interface BatchSettlerOptions {
  retentionMs: number;
  maxAttempts: number;
}

/** What {@link BatchSettler} writes with and reports to. */
export interface BatchSettlerDeps {
  store: OutboxStore;
  logger: Logger;
}

/** Records batches' outcomes; see the module comment. */
export class BatchSettler {
  constructor(
    private readonly options: BatchSettlerOptions,
    private readonly deps: BatchSettlerDeps,
  ) {}

  /**
   * Records the outcome of a batch. Retried a few times: if it never lands,
   * the rows are still pending and are claimed and published again
   * (at-least-once). Returns the ids that went dead.
   */
  async settle(published: string[], failures: PublishFailure[]): Promise<string[]> {
    const { store } = this.deps;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.options.retentionMs > 0) await markPublished(store, published);
        else await deletePublished(store, published);
        published = [];
        return await recordFailures(store, failures, this.options.maxAttempts);
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
