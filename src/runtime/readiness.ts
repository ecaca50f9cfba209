/**
 * Readiness of a running relay, check by check: the database answers, the
 * broker is connected and not blocking publishes, the tenant flags are
 * initialized, failing open, or applying saved flags, and the relay's
 * claims are not failing. Served as JSON by /readyz and as the `ready`
 * gauge.
 */
import type pg from 'pg';
import { describeError } from '../errors.js';
import type { Publisher } from '../relay/publisher.js';
import type { ClaimFailure } from '../relay/relay.js';
import type { TenantGate } from '../relay/tenant-gate.js';

/** One check: whether it passes, and why, in words for an operator. */
export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** What /readyz answers (200 when `ready`, else 503). */
export interface ReadinessReport {
  ready: boolean;
  checks: { database: CheckResult; broker: CheckResult; flags: CheckResult; claims: CheckResult };
}

/** What the checks look at. */
export interface ReadinessDeps {
  pool: pg.Pool;
  publisher: Publisher;
  gate: TenantGate;
  /** The relay's claims failing in a row, if they are (a dropped table, a revoked grant). */
  claimFailing?: () => ClaimFailure | undefined;
  /** Longest wait for the database's answer. */
  timeoutMs: number;
}

/** Runs the checks; remembers the last report for the `ready` gauge. */
export class ReadinessProbe {
  private lastReport: ReadinessReport | undefined;
  private databaseCheck: { at: number; result: Promise<CheckResult> } | undefined;
  private stopping = false;

  constructor(private readonly deps: ReadinessDeps) {}

  /** From now on, report not ready: the relay is shutting down. */
  markStopping(): void {
    this.stopping = true;
  }

  /** The last report's checks as booleans (for the `ready` gauge); all 0 once stopping. */
  last(): Record<string, boolean> {
    const checks = this.lastReport?.checks;
    if (!checks) return {};
    return Object.fromEntries(
      Object.entries(checks).map(([name, check]) => [name, check.ok && !this.stopping]),
    );
  }

  async check(): Promise<ReadinessReport> {
    const [database, broker, flags, claims] = [
      await this.database(),
      this.broker(),
      this.flags(),
      this.claims(),
    ];
    const report: ReadinessReport = {
      ready: !this.stopping && database.ok && broker.ok && flags.ok && claims.ok,
      checks: { database, broker, flags, claims },
    };
    this.lastReport = report;
    return report;
  }

  /**
   * One `select 1` at a time, its answer reused for a second: probes and
   * scrapes never take more than one of the relay's pool connections. On
   * timeout the pool discards the connection (pg's query_timeout), so a dead
   * link cannot keep it.
   */
  private database(): Promise<CheckResult> {
    const cached = this.databaseCheck;
    if (cached && Date.now() - cached.at < 1000) return cached.result;
    const result = this.deps.pool
      // query_timeout is pg's (missing from @types/pg's QueryConfig).
      .query({ text: 'select 1', query_timeout: this.deps.timeoutMs } as pg.QueryConfig)
      .then(
        (): CheckResult => ({ ok: true, detail: 'connected' }),
        (error: unknown): CheckResult => ({
          ok: false,
          detail: describeError(error) || 'query failed',
        }),
      );
    this.databaseCheck = { at: Date.now(), result };
    return result;
  }

  private broker(): CheckResult {
    const status = this.deps.publisher.status?.() ?? {
      connected: this.deps.publisher.isReady(),
      blocked: undefined,
      channels: 0,
    };
    if (!status.connected) return { ok: false, detail: 'disconnected; reconnecting' };
    if (status.blocked !== undefined) {
      return { ok: false, detail: `blocked by the broker: ${status.blocked}` };
    }
    return { ok: true, detail: `connected, ${status.channels} channels open` };
  }

  /** Not ready once two claims in a row failed: `select 1` can pass while every claim fails. */
  private claims(): CheckResult {
    const failing = this.deps.claimFailing?.();
    if (!failing || failing.count < 2) return { ok: true, detail: 'claiming' };
    return {
      ok: false,
      detail: `${failing.count} claims failed in a row since ${new Date(failing.since).toISOString()}: ${failing.error}`,
    };
  }

  private flags(): CheckResult {
    const status = this.deps.gate.status();
    if (status.failing === 'closed') {
      return {
        ok: false,
        detail: `${status.source} unavailable; failing closed (every tenant held)`,
      };
    }
    if (status.failing === 'open') {
      return { ok: true, detail: `${status.source} unavailable; failing open (no tenant paused)` };
    }
    if (status.saved) {
      const { store, savedAt, ageSeconds } = status.saved;
      const when = savedAt
        ? `, received ${savedAt.toISOString()} (${Math.round(ageSeconds ?? 0)} s ago)`
        : '';
      return {
        ok: true,
        detail: `${status.source} unavailable; applying the flags saved in ${store === 'postgres' ? 'PostgreSQL' : 'Redis'}${when}`,
      };
    }
    if (status.source === 'none')
      return { ok: true, detail: 'no flag source: every tenant enabled' };
    if (!status.initialized) return { ok: false, detail: `${status.source} not initialized` };
    return { ok: true, detail: `${status.source} initialized` };
  }
}
