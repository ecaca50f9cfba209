/**
 * Whether the relay loop is alive, for /healthz. The loop reports each time
 * it gets round: it claimed rows (`beat`), or it waits on a condition it
 * knows (`waiting`): caught up until a hint or the full poll, the broker
 * disconnected or blocking, flags failing closed, a claim that failed or this
 * relay fenced off (its liveness lock not held). Such a wait is bounded by
 * its own timer and is never a stall, however long (OUTBOX_POLL_INTERVAL may
 * be an hour); its end counts as progress.
 *
 * The loop is stalled when, outside such a wait, nothing was reported for
 * OUTBOX_STALL_TIMEOUT: a claim that hangs (a lock it
 * waits on, a connection that never answers), or batches in flight that never
 * end while the broker is ready. It is dead when its promise rejected. Either
 * way restarting the process is the cure, which is what a failing liveness
 * probe does.
 */
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';

/** How the loop last got round. */
export type ProgressKind =
  /** Nothing reported yet (the loop is starting). */
  | 'started'
  /** A claim returned rows. */
  | 'claimed'
  /** A claim found nothing, or a short batch: waiting for a hint, a token or the full poll. */
  | 'caught-up'
  /** A claim failed (the database, or fenced: the liveness lock is not held); retrying. */
  | 'claim-failed'
  /** The broker is disconnected or blocks publishes: not claiming. */
  | 'broker-not-ready'
  /** The tenant flags are unavailable and fail closed: not claiming. */
  | 'flags-closed';

/** What the relay loop reports as it runs (the port; see the module comment). */
export interface RelayProgress {
  /** The loop got round, as `kind` says. */
  beat(kind: ProgressKind): void;
  /** The loop waits on a known condition: never a stall while `wait` lasts; returns `wait`. */
  waiting<T>(kind: ProgressKind, wait: Promise<T>): Promise<T>;
  /** The loop died: its promise rejected with `error`. */
  ended(error: unknown): void;
}

/** A progress port that records nothing (a relay nobody probes, tests). */
export const ignoreProgress: RelayProgress = {
  beat: () => undefined,
  waiting: (_kind, wait) => wait,
  ended: () => undefined,
};

/** The loop's health as /healthz reports it: 200 while `alive`, else 503. */
export interface LoopHealth {
  alive: boolean;
  status: 'ok' | 'stalled' | 'died' | 'stopping';
  detail: string;
  lastProgress: ProgressKind;
  /** Milliseconds since the last report (0 while waiting on a known condition). */
  quietMs: number;
}

/** Options of {@link ProgressMonitor}. */
export interface ProgressMonitorOptions {
  /** OUTBOX_STALL_TIMEOUT: how long a loop may be quiet, outside a known wait, and still be alive. */
  stallTimeoutMs: number;
  logger: Logger;
  /** A monotonic clock in ms (tests). */
  now?: () => number;
}

/** Receives the loop's reports and judges its health; see the module comment. */
export class ProgressMonitor implements RelayProgress {
  private readonly now: () => number;
  private lastKind: ProgressKind = 'started';
  private lastAt: number;
  private waits = 0;
  private death: { error: unknown } | undefined;
  private stopping = false;
  private stallLogged = false;

  constructor(private readonly options: ProgressMonitorOptions) {
    this.now = options.now ?? (() => performance.now());
    this.lastAt = this.now();
  }

  beat(kind: ProgressKind): void {
    this.lastKind = kind;
    this.lastAt = this.now();
    if (this.stallLogged) {
      this.stallLogged = false;
      this.options.logger.info('relay loop making progress again', { progress: kind });
    }
  }

  waiting<T>(kind: ProgressKind, wait: Promise<T>): Promise<T> {
    this.beat(kind);
    this.waits += 1;
    return wait.finally(() => {
      this.waits -= 1;
      this.beat(kind);
    });
  }

  ended(error: unknown): void {
    this.death = { error };
  }

  /** From now on the loop ends on purpose: alive while the process shuts down. */
  markStopping(): void {
    this.stopping = true;
  }

  /** The loop's health now; logs the first check that finds it stalled. */
  check(): LoopHealth {
    const quietMs = this.waits > 0 ? 0 : Math.round(this.now() - this.lastAt);
    const base = { lastProgress: this.lastKind, quietMs };
    if (this.death) {
      return {
        ...base,
        alive: false,
        status: 'died',
        detail: `the relay loop died: ${describeError(this.death.error) || 'no reason given'}`,
      };
    }
    if (this.stopping) return { ...base, alive: true, status: 'stopping', detail: 'stopping' };
    if (this.waits > 0) {
      return { ...base, alive: true, status: 'ok', detail: `waiting: ${this.lastKind}` };
    }
    if (quietMs <= this.options.stallTimeoutMs) {
      return { ...base, alive: true, status: 'ok', detail: `last progress: ${this.lastKind}` };
    }
    const detail = `the relay loop made no progress for ${quietMs} ms (last: ${this.lastKind}; OUTBOX_STALL_TIMEOUT is ${this.options.stallTimeoutMs} ms)`;
    if (!this.stallLogged) {
      this.stallLogged = true;
      this.options.logger.error('relay loop stalled', {
        lastProgress: this.lastKind,
        quietMs,
        stallTimeoutMs: this.options.stallTimeoutMs,
      });
    }
    return { ...base, alive: false, status: 'stalled', detail };
  }
}
