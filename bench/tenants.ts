/**
 * The per-tenant kill switch and fairness, measured: other tenants'
 * throughput with a paused tenant's large backlog held in the outbox against
 * without it, and other tenants' commit-to-publish latency while one tenant's
 * flood drains.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { enqueue } from '../src/outbox/enqueue.js';
import {
  ackLatencies,
  arrivalRate,
  type BenchEnv,
  connectClients,
  drainedQueue,
  EXCHANGE,
  freshSchema,
  inProcessRelay,
  insertBacklog,
  pacedWriters,
  percentile,
  spawnRelay,
  waitForAcks,
} from './harness.js';
import { benchPayload } from './raw-publisher.js';

/** Rates in msg/s. */
export interface PausedBacklogResult {
  heldRows: number;
  others: number;
  rateWithout: number;
  rateWith: number;
  ratio: number;
}

const PAUSED = 'paused-tenant';

function flagsFile(dir: string): string {
  const path = join(dir, 'flags.json');
  writeFileSync(
    path,
    JSON.stringify({
      flags: {
        'outbox-publish-enabled': {
          key: 'outbox-publish-enabled',
          version: 1,
          on: true,
          variations: [true, false],
          offVariation: 0,
          fallthrough: { variation: 0 },
          targets: [],
          contextTargets: [{ contextKind: 'tenant', values: [PAUSED], variation: 1 }],
          rules: [],
          prerequisites: [],
          salt: 'bench',
        },
      },
    }),
  );
  return path;
}

/**
 * Others' rate draining `others` rows without and with `heldRows` held rows
 * of a paused tenant. Both schemas are built first and checkpointed, then the
 * two sides are measured alternately (without, with, without, with) and each
 * side's mean is compared, so neither side pays alone for the writes of
 * building the large backlog or for running first.
 */
export async function measurePausedBacklog(
  env: BenchEnv,
  options: { heldRows: number; others: number; rounds?: number },
  log: (line: string) => void,
): Promise<PausedBacklogResult> {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-bench-flags-'));
  const flags = flagsFile(dir);
  const queue = await drainedQueue(env, 'outbox-bench-paused', 'classic');
  const sides = [0, options.heldRows];
  const rates = new Map<number, number[]>(sides.map((held) => [held, []]));
  try {
    for (const held of sides) {
      const schema = `bench_paused_${held}`;
      await freshSchema(env, schema);
      if (held > 0) {
        // The held backlog is older than everything else (lower ids), as after a long pause.
        await insertBacklog(env, schema, queue.routingKey, held, {
          tenants: 1,
          payloadBytes: 200,
          tenantSql: `'${PAUSED}'`,
        });
      }
    }
    for (let round = 0; round < (options.rounds ?? 2); round++) {
      for (const held of sides) {
        const schema = `bench_paused_${held}`;
        await insertBacklog(env, schema, queue.routingKey, options.others, {
          tenants: 100,
          startAt: held + round * options.others,
        });
        await env.pool.query(`vacuum analyze "${schema}".messages`);
        await env.pool.query('checkpoint');
        queue.reset();
        const relay = spawnRelay(env, schema, { OUTBOX_FLAGS_FILE: flags });
        await queue.waitFor(options.others, 300_000);
        await relay.stop();
        rates.get(held)?.push(arrivalRate(queue.arrivals));
        const { rows } = await env.pool.query(
          `select count(*)::int as n from "${schema}".messages`,
        );
        if (rows[0].n !== held)
          throw new Error(`expected ${held} held rows to remain, found ${rows[0].n}`);
      }
    }
  } finally {
    for (const held of sides)
      await env.pool.query(`drop schema if exists "bench_paused_${held}" cascade`);
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const rateWithout = mean(rates.get(0) ?? []);
  const rateWith = mean(rates.get(options.heldRows) ?? []);
  log(
    `  other tenants: ${Math.round(rateWithout)} msg/s without, ${Math.round(rateWith)} msg/s with ${options.heldRows} held rows of a paused tenant (means of ${rates
      .get(0)
      ?.map((r) => Math.round(r))
      .join(', ')} and ${rates
      .get(options.heldRows)
      ?.map((r) => Math.round(r))
      .join(', ')})`,
  );
  return {
    heldRows: options.heldRows,
    others: options.others,
    rateWithout,
    rateWith,
    ratio: rateWith / rateWithout,
  };
}

/** Latency of other tenants while a flood drains. */
export interface FloodResult {
  flood: number;
  floodRate: number;
  othersEvents: number;
  othersP50: number;
  othersP99: number;
}

/**
 * One tenant's `flood` events are pending; while the relay drains them,
 * 4 writers commit events of other tenants at `rate` per second.
 */
export async function measureFlood(
  env: BenchEnv,
  options: { flood: number; rate: number },
  log: (line: string) => void,
): Promise<FloodResult> {
  const schema = 'bench_flood';
  await freshSchema(env, schema);
  const queue = await drainedQueue(env, 'outbox-bench-flood', 'classic');
  await insertBacklog(env, schema, queue.routingKey, options.flood, {
    tenants: 1,
    tenantSql: `'flood'`,
  });
  await env.pool.query(`vacuum analyze "${schema}".messages`);
  const committedAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  let floodDone = 0;
  let floodFirst = 0;
  let floodLast = 0;
  const runtime = await inProcessRelay(env, schema, (message) => {
    const now = performance.now();
    if (message.tenantId === 'flood') {
      floodDone += 1;
      if (floodFirst === 0) floodFirst = now;
      floodLast = now;
    } else {
      ackedAt.set(message.messageId, now);
    }
  });
  let writers: pg.Client[] = [];
  try {
    writers = await connectClients(env, 4);
    await runtime.start();
    await pacedWriters(
      writers,
      options.rate,
      () => floodDone >= options.flood,
      async (client, w, k) => {
        const [row] = await enqueue(
          client,
          {
            tenantId: `tenant-${(w * 13 + k) % 50}`,
            exchange: EXCHANGE,
            routingKey: queue.routingKey,
            payload: benchPayload(k, 50),
            contentType: 'application/json',
          },
          { schema },
        );
        if (row) committedAt.set(row.messageId, performance.now());
      },
    );
    await waitForAcks(committedAt, ackedAt);
  } finally {
    await runtime.stop();
    for (const client of writers) await client.end().catch(() => undefined);
    await queue.close();
    await env.pool.query(`drop schema "${schema}" cascade`);
  }
  const latencies = ackLatencies(committedAt, ackedAt);
  const result: FloodResult = {
    flood: options.flood,
    floodRate: ((floodDone - 1) * 1000) / Math.max(1, floodLast - floodFirst),
    othersEvents: latencies.length,
    othersP50: percentile(latencies, 50),
    othersP99: percentile(latencies, 99),
  };
  log(
    `  flood of ${options.flood} drained at ${Math.round(result.floodRate)} msg/s; meanwhile ${result.othersEvents} other events: p50 ${result.othersP50.toFixed(1)} ms, p99 ${result.othersP99.toFixed(1)} ms`,
  );
  return result;
}
