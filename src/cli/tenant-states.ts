/**
 * What `outbox-relay tenants` and `tenants --top` share: the tenant flags
 * read as the relays read them (a flag view over the configured source), a
 * tenant's state from its flags, and the lines that show them. Its own module
 * so that `--top` (src/cli/tenants-top.ts, loaded only for --top) builds on
 * it without importing the command that loads it.
 *
 * It never claims a state it does not know: when the flag source cannot be
 * read, the relays may still hold tenants by the flags they loaded earlier,
 * so every state is unknown, with the reason.
 */
import type { Config } from '../config.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { TenantDecision, TenantGateStatus } from '../relay/tenant-gate.js';
import { openTenantGate } from '../tenants/open-tenant-gate.js';
import { printable } from './terminal-text.js';

/** What a tenant's events are doing, as far as the tenants commands can tell. */
export type TenantState = 'publishing' | 'paused' | 'throttled' | 'unknown';

/** The flag source as reported: the gate's status and, when unavailable, why. */
export interface FlagSourceReport extends TenantGateStatus {
  error: string | null;
}

/** A tenant's state from its flags; unknown without a decision. */
export interface TenantStateReport {
  /** null when the state is unknown. */
  paused: boolean | null;
  /** Events per second, when throttled. */
  rateLimit: number | null;
  state: TenantState;
}

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

/** What a decision makes of a tenant's state. */
export function tenantState(decision: TenantDecision | undefined): TenantStateReport {
  if (!decision) return { paused: null, rateLimit: null, state: 'unknown' };
  const rateLimit = decision.ratePerSecond ?? null;
  const state = decision.paused ? 'paused' : rateLimit !== null ? 'throttled' : 'publishing';
  return { paused: decision.paused, rateLimit, state };
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
