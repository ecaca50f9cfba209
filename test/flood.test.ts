/**
 * Seeing a flood as ops would: a relay (`outbox-relay run`, HTTP endpoint on)
 * publishes while a writer enqueues heavily for one tenant and lightly for
 * three others. `outbox-relay tenants --top --json` lists the flooder first,
 * and /metrics gives it the highest write rate. Throttled by its flag, the
 * flooder's rate stays near what it writes (its held-back claims do not
 * count), and `--top` shows it throttled.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { type CliProcess, runCli, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { publishFlag, rateLimitFlag } from './helpers/flags.js';
import { relayPort, type Scrape, scrapeMetrics, stopRelay } from './helpers/http-endpoint.js';
import { orderEvent } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('flood', { resetEachTest: true });
const dir = mkdtempSync(join(tmpdir(), 'outbox-flood-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FLOODER = 'flooder';
const OTHERS = ['acme', 'globex', 'initech'];
/** Per transaction: this many rows of the flooder, one of each other tenant. */
const FLOOD_ROWS = 20;

/** A tenant line of `tenants --top --json`. */
interface TopTenant {
  tenantId: string;
  writesPerSecond: number | null;
  pending: number;
  oldestPendingSeconds: number;
  paused: boolean | null;
  rateLimit: number | null;
  state: string;
}

interface TopReport {
  readAt: string;
  intervalSeconds: number;
  writesPerSecond: number;
  activeTenants: number;
  tenants: TopTenant[];
}

/**
 * A writer: one transaction after another (the flooder's rows and one of each
 * of `others`), until stopped, or 60 s, or 200,000 flooder rows.
 */
function startWriter(others: readonly string[] = OTHERS): {
  written: () => number;
  stop(): Promise<void>;
} {
  const { db, broker } = fixture;
  let stopped = false;
  let flooded = 0;
  const done = (async () => {
    const deadline = Date.now() + 60_000;
    for (let i = 0; !stopped && Date.now() < deadline && flooded < 200_000; i++) {
      await enqueue(
        db.pool,
        [
          ...Array.from({ length: FLOOD_ROWS }, (_, j) =>
            orderEvent(broker.exchange, FLOODER, i * FLOOD_ROWS + j),
          ),
          ...others.map((tenant) => orderEvent(broker.exchange, tenant, i)),
        ],
        { schema: db.schema },
      );
      flooded += FLOOD_ROWS;
    }
  })();
  return {
    written: () => flooded,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** The write-rate gauge by tenant label. */
function writeRates(scrape: Scrape): Map<string, number> {
  const series = scrape.get('outbox_relay_tenant_writes_per_second')?.metrics ?? [];
  return new Map(series.map((m) => [m.labels?.tenant ?? '', Number(m.value)]));
}

async function topJson(env: Record<string, string> = {}): Promise<TopReport> {
  const result = await runCli(
    ['tenants', '--top', '--json', '--interval', '2'],
    cliEnv(fixture, env),
  );
  expect(result, result.stderr).toMatchObject({ code: 0 });
  return JSON.parse(result.stdout) as TopReport;
}

describe('a tenant flooding the outbox', () => {
  it('comes first in tenants --top --json and highest in /metrics', async () => {
    const relay = startRelay();
    const writer = startWriter();
    try {
      const port = await relayPort(relay);
      // The CLI takes two reads two seconds apart, while the writer writes.
      const report = await topJson();
      expect(report.intervalSeconds).toBeGreaterThan(1.9);
      const [first, ...rest] = report.tenants;
      expect(first).toMatchObject({ tenantId: FLOODER, state: 'publishing', paused: false });
      const others = rest.filter((t) => OTHERS.includes(t.tenantId));
      expect(others.length).toBeGreaterThan(0);
      for (const other of others) {
        expect(other.writesPerSecond ?? 0).toBeLessThan((first?.writesPerSecond ?? 0) / 3);
      }
      expect(first?.writesPerSecond ?? 0).toBeGreaterThan(report.writesPerSecond / 2);

      let rates = new Map<string, number>();
      await waitFor(async () => {
        rates = writeRates(await scrapeMetrics(port));
        const flood = rates.get(FLOODER) ?? 0;
        return flood > 0 && OTHERS.some((tenant) => (rates.get(tenant) ?? 0) > 0);
      }, 'the write-rate gauges to show the flooder and another tenant');
      const ranked = [...rates].filter(([t]) => t !== 'other').sort(([, a], [, b]) => b - a);
      expect(ranked[0]?.[0]).toBe(FLOODER);
      const all = [...rates.values()].reduce((sum, rate) => sum + rate, 0);
      expect(rates.get(FLOODER) ?? 0).toBeGreaterThan(all / 2);
      // Top 2: the flooder and one other get a label, the rest are "other".
      expect(rates.size).toBeLessThanOrEqual(3);
      expect(rates.has('other')).toBe(true);
    } finally {
      await writer.stop();
      await stopRelay(relay);
    }
  });

  it('shows a throttled flooder as throttled, at about the rate it writes', async () => {
    const flags = join(dir, 'throttled.json');
    writeFileSync(
      flags,
      JSON.stringify({
        flags: {
          'outbox-publish-enabled': publishFlag([]),
          'outbox-tenant-rate-limit': rateLimitFlag({ [FLOODER]: 50 }),
        },
      }),
    );
    // Alone, the flooder gets whole batches (the default 1,000 rows): each
    // claim takes up to a batch of its rows for a budget of a few, and holds
    // the rest back for the next claim.
    const relay = startRelay({ OUTBOX_FLAGS_FILE: flags, OUTBOX_BATCH_SIZE: '1000' });
    const writer = startWriter([]);
    try {
      await relayPort(relay);
      // Wait until the relay holds the flooder's rows back, so its claims repeat.
      await waitFor(() => writer.written() > 3000, 'the flood to build a backlog');
      const startedAt = Date.now();
      const writtenBefore = writer.written();
      const report = await topJson({ OUTBOX_FLAGS_FILE: flags });
      const writtenRate = (writer.written() - writtenBefore) / ((Date.now() - startedAt) / 1000);
      const first = report.tenants[0];
      expect(first).toMatchObject({ tenantId: FLOODER, state: 'throttled', rateLimit: 50 });
      // Rows claimed again and again while held back would multiply it.
      expect(first?.writesPerSecond ?? 0).toBeGreaterThan(writtenRate / 3);
      expect(first?.writesPerSecond ?? 0).toBeLessThan(writtenRate * 3);
    } finally {
      await writer.stop();
      await stopRelay(relay);
    }
  });
});

function startRelay(env: Record<string, string> = {}): CliProcess {
  return startCli(
    ['run'],
    cliEnv(fixture, {
      LOG_LEVEL: 'info',
      OUTBOX_HTTP_PORT: '0',
      OUTBOX_HTTP_HOST: '127.0.0.1',
      OUTBOX_STATS_INTERVAL: '2s',
      OUTBOX_METRICS_TOP_TENANTS: '2',
      // The rate of a tenant drained at full speed swings by the change of its
      // rows in flight over an interval (docs/operations.md, "The write rate"):
      // up to 3 × 200 rows here, against about 20 times the others' rate.
      OUTBOX_BATCH_SIZE: '200',
      ...env,
    }),
  );
}
