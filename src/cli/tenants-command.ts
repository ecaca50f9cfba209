/**
 * `outbox-relay tenants`: per tenant with pending events, how many, how old
 * the oldest is, and whether the tenant is paused or throttled right now
 * (evaluated with the same flag source and flags the relay uses).
 */
import type { Config } from '../config.js';
import { withCommandPool } from '../db/pool.js';
import type { Logger } from '../log/logger.js';
import { outboxStatements, tenantBacklog } from '../outbox/queries.js';
import { toSqlExecutor } from '../outbox/sql-executor.js';
import { openTenantGate } from '../tenants/open-tenant-gate.js';

/** One line of the report. */
export interface TenantReport {
  tenantId: string;
  pending: number;
  oldestPendingSeconds: number;
  paused: boolean;
  /** Events per second, when throttled. */
  rateLimit: number | null;
}

function age(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86_400)}d`;
}

/** Prints the report (a table, or JSON with --json); returns the exit code. */
export async function tenantsCommand(
  config: Config,
  options: { json: boolean },
  logger: Logger,
): Promise<number> {
  return withCommandPool(config, 'tenants', logger, async (pool) => {
    const backlog = await tenantBacklog(toSqlExecutor(pool), outboxStatements(config.schema));
    const gate = await openTenantGate(config, logger);
    let decisions: ReadonlyMap<string, { paused: boolean; ratePerSecond: number | undefined }>;
    try {
      decisions = await gate.decide(backlog.map((row) => row.tenant_id));
    } finally {
      await gate.close();
    }
    const report: TenantReport[] = backlog.map((row) => ({
      tenantId: row.tenant_id,
      pending: row.pending,
      oldestPendingSeconds: Math.round(row.oldest_seconds),
      paused: decisions.get(row.tenant_id)?.paused ?? false,
      rateLimit: decisions.get(row.tenant_id)?.ratePerSecond ?? null,
    }));
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ flagSource: gate.status(), tenants: report }, null, 2)}\n`,
      );
      return 0;
    }
    const status = gate.status();
    process.stdout.write(
      `flag source: ${status.source}${status.failing ? ` (unavailable, failing ${status.failing})` : ''}\n`,
    );
    const width = Math.max(6, ...report.map((r) => r.tenantId.length));
    process.stdout.write(
      `${'TENANT'.padEnd(width)}  ${'PENDING'.padStart(9)}  ${'OLDEST'.padStart(6)}  STATE\n`,
    );
    for (const r of report) {
      const state = r.paused
        ? 'paused'
        : r.rateLimit !== null
          ? `throttled ${r.rateLimit}/s`
          : 'publishing';
      process.stdout.write(
        `${r.tenantId.padEnd(width)}  ${String(r.pending).padStart(9)}  ${age(r.oldestPendingSeconds).padStart(6)}  ${state}\n`,
      );
    }
    if (report.length === 0) process.stdout.write('(no pending events)\n');
    return 0;
  });
}
