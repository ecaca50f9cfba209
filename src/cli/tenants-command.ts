/**
 * `outbox-relay tenants`: per tenant with pending events, how many, how old
 * the oldest is, and whether the tenant is paused or throttled right now
 * (evaluated with the same flag source and flags the relay uses).
 *
 * It never claims a state it does not know: when the flag source cannot be
 * read, the relays may still hold tenants by the flags they loaded earlier,
 * so every state is shown as unknown, with the reason, and the command exits 1.
 *
 * `--top` (src/cli/tenants-top.ts) ranks the tenants by write rate instead,
 * with the same flag source and states.
 */
import type { Config } from '../config.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { type TenantBacklog, tenantBacklog } from '../outbox/queries.js';
import { toSqlExecutor } from '../outbox/sql-executor.js';
import type { TenantDecision, TenantGateStatus } from '../relay/tenant-gate.js';
import { openTenantGate } from '../tenants/open-tenant-gate.js';
import { withMigratedOutbox } from './migrated-outbox.js';
import { printable } from './terminal-text.js';

/** What a tenant's events are doing, as far as this command can tell. */
export type TenantState = 'publishing' | 'paused' | 'throttled' | 'unknown';

/** One line of the report. */
export interface TenantReport {
  tenantId: string;
  pending: number;
  oldestPendingSeconds: number;
  /** null when the state is unknown. */
  paused: boolean | null;
  /** Events per second, when throttled. */
  rateLimit: number | null;
  state: TenantState;
}

/** The flag source as reported: the gate's status and, when unavailable, why. */
export interface FlagSourceReport extends TenantGateStatus {
  error: string | null;
}

/** A tenant's state from its flags; unknown without a decision. */
export type TenantStateReport = Pick<TenantReport, 'paused' | 'rateLimit' | 'state'>;

/** An age as the table shows it: 42s, 14m, 3h, 2d. */
export function age(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}

/**
 * A logger for the gate of this one-shot command. The gate's lines are
 * written for a long-running relay; here the command reports the source's
 * state itself, in one line, so they go out at debug, and the failures among
 * them (an `error` or an SDK `detail`) are kept as the reason.
 */
function flagSourceLogger(logger: Logger): { logger: Logger; reasons: string[] } {
  const reasons: string[] = [];
  const keep = (fields: Record<string, unknown> | undefined) => {
    const found = fields?.error ?? fields?.detail;
    if (found === undefined) return;
    // The SDK prefixes its lines with "warn: [LaunchDarkly] ".
    const reason = describeError(found).replace(/^\w+: \[LaunchDarkly\] /, '');
    // Keep the most specific of messages that repeat one another.
    if (reasons.some((kept) => kept.includes(reason))) return;
    const kept = reasons.filter((other) => !reason.includes(other));
    reasons.splice(0, reasons.length, ...kept, reason);
  };
  const debug = (message: string, fields?: Record<string, unknown>) =>
    logger.debug(message, fields);
  return {
    reasons,
    logger: {
      debug,
      info: debug,
      warn: (message, fields) => {
        keep(fields);
        debug(message, fields);
      },
      error: (message, fields) => {
        keep(fields);
        debug(message, fields);
      },
    },
  };
}

function sourceName(config: Config): string {
  if (config.launchDarklySdkKey) return 'LaunchDarkly';
  return `flags file ${config.flagsFile}`;
}

/** The tenant flags, read as the relays read them, for as long as the command runs. */
export interface FlagView {
  /** The source's state now, with the reason when it is unavailable. */
  source(): FlagSourceReport;
  /** Decisions for `tenants`; undefined while the source is unavailable. */
  decide(tenants: readonly string[]): Promise<ReadonlyMap<string, TenantDecision> | undefined>;
  close(): Promise<void>;
}

/** Opens the configured flag source (waiting, bounded, for its first flags). */
export async function openFlagView(config: Config, logger: Logger): Promise<FlagView> {
  const captured = flagSourceLogger(logger);
  const gate = await openTenantGate(config, captured.logger);
  const source = (): FlagSourceReport => {
    const status = gate.status();
    if (status.initialized) return { ...status, error: null };
    const why = captured.reasons.slice(-3).join('; ') || 'it did not load';
    return { ...status, error: `${sourceName(config)}: ${why}` };
  };
  return {
    source,
    decide: async (tenants) => (source().error === null ? gate.decide(tenants) : undefined),
    close: () => gate.close(),
  };
}

/** Evaluates the flags for `tenants` once; undefined decisions when the source is unavailable. */
async function evaluateFlags(
  config: Config,
  tenants: readonly string[],
  logger: Logger,
): Promise<{
  source: FlagSourceReport;
  decisions: ReadonlyMap<string, TenantDecision> | undefined;
}> {
  const flags = await openFlagView(config, logger);
  try {
    return { source: flags.source(), decisions: await flags.decide(tenants) };
  } finally {
    await flags.close();
  }
}

/** What a decision makes of a tenant's state. */
export function tenantState(decision: TenantDecision | undefined): TenantStateReport {
  if (!decision) return { paused: null, rateLimit: null, state: 'unknown' };
  const rateLimit = decision.ratePerSecond ?? null;
  const state = decision.paused ? 'paused' : rateLimit !== null ? 'throttled' : 'publishing';
  return { paused: decision.paused, rateLimit, state };
}

function reportOf(
  row: TenantBacklog,
  decisions: ReadonlyMap<string, TenantDecision> | undefined,
): TenantReport {
  return {
    tenantId: row.tenant_id,
    pending: row.pending,
    oldestPendingSeconds: Math.round(row.oldest_seconds),
    ...tenantState(decisions?.get(row.tenant_id)),
  };
}

/** The STATE column. */
export function stateText(report: TenantStateReport): string {
  if (report.state === 'unknown') return 'unknown (flags unavailable)';
  if (report.state === 'throttled') return `throttled ${report.rateLimit}/s`;
  return report.state;
}

/** The table's first line: the flag source, and why it is unavailable (escaped). */
export function flagSourceLine(source: FlagSourceReport): string {
  return `flag source: ${source.source}${source.error ? ` (unavailable: ${printable(source.error)})` : ''}`;
}

/** The line on stderr when the flags are unavailable, or undefined. */
export function flagsUnavailableLine(source: FlagSourceReport): string | undefined {
  if (source.error === null) return undefined;
  return `outbox-relay: tenant flags unavailable (${printable(source.error)}): tenant states are unknown\n`;
}

function printTable(source: FlagSourceReport, report: readonly TenantReport[]): void {
  const lines = [flagSourceLine(source)];
  const ids = report.map((r) => printable(r.tenantId));
  const width = Math.max(6, ...ids.map((id) => id.length));
  lines.push(`${'TENANT'.padEnd(width)}  ${'PENDING'.padStart(9)}  ${'OLDEST'.padStart(6)}  STATE`);
  report.forEach((r, i) => {
    lines.push(
      `${(ids[i] ?? '').padEnd(width)}  ${String(r.pending).padStart(9)}  ${age(r.oldestPendingSeconds).padStart(6)}  ${stateText(r)}`,
    );
  });
  if (report.length === 0) lines.push('(no pending events)');
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Prints the report (a table, or JSON with --json); returns the exit code. */
export async function tenantsCommand(
  config: Config,
  options: { json: boolean; top?: boolean; intervalMs?: number },
  logger: Logger,
): Promise<number> {
  if (options.top) {
    // Loaded for --top only; it builds on this module's flag view and states.
    const { tenantsTop } = await import('./tenants-top.js');
    return tenantsTop(
      config,
      { json: options.json, intervalMs: options.intervalMs ?? 2000 },
      logger,
    );
  }
  const backlog = await withMigratedOutbox(config, 'tenants', logger, (pool, statements) =>
    tenantBacklog(toSqlExecutor(pool), statements),
  );
  const flags = await evaluateFlags(
    config,
    backlog.map((row) => row.tenant_id),
    logger,
  );
  const report = backlog.map((row) => reportOf(row, flags.decisions));
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ flagSource: flags.source, tenants: report }, null, 2)}\n`,
    );
  } else {
    printTable(flags.source, report);
  }
  const unavailable = flagsUnavailableLine(flags.source);
  if (unavailable === undefined) return 0;
  process.stderr.write(unavailable);
  return 1;
}
