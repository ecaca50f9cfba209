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
import type { Logger } from '../log/logger.js';
import { type TenantBacklog, tenantBacklog } from '../outbox/operator-queries.js';
import type { TenantDecision } from '../relay/tenant-gate.js';
import { withMigratedOutbox } from './migrated-outbox.js';
import {
  age,
  type FlagSourceReport,
  flagSourceLine,
  flagsUnavailableLine,
  openFlagView,
  stateText,
  type TenantStateReport,
  tenantState,
} from './tenant-states.js';
import { printable } from './terminal-text.js';

/** One line of the report. */
export interface TenantReport extends TenantStateReport {
  tenantId: string;
  pending: number;
  oldestPendingSeconds: number;
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
    // Loaded for --top only; it shares the flag view and states of tenant-states.ts.
    const { tenantsTop } = await import('./tenants-top.js');
    return tenantsTop(
      config,
      { json: options.json, intervalMs: options.intervalMs ?? 2000 },
      logger,
    );
  }
  const backlog = await withMigratedOutbox(config, 'tenants', logger, (store) =>
    tenantBacklog(store),
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
