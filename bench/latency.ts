/**
 * Commit-to-publish latency at a steady offered load: writers commit business
 * transactions that enqueue one event each, at a fixed rate.
 *
 * Two placements of the relay, both timed on this process's clock:
 * - `in-process`: the relay runs in this process (the runtime `outbox-relay
 *   run` uses), and the time is COMMIT returning → the broker's ack. The
 *   writers' 8 connections share the relay's event loop, so on a slow machine
 *   this measures that contention too.
 * - `process`: `outbox-relay run` in its own process, as it is deployed, and
 *   the time is COMMIT returning → arrival at a consumer in this process (the
 *   ack is in the other process; arrival comes after it).
 */
import type pg from 'pg';
import { enqueue } from '../src/outbox/enqueue.js';
import {
  ackLatencies,
  type BenchEnv,
  connectClients,
  drainedQueue,
  EXCHANGE,
  freshSchema,
  inProcessRelay,
  pacedWriters,
  percentile,
  relaysRunning,
  spawnRelay,
  waitForAcks,
} from './harness.js';
import { benchPayload } from './raw-publisher.js';

/** Latencies in milliseconds. */
export interface LatencyResult {
  relay: 'in-process' | 'process';
  offeredPerSecond: number;
  writers: number;
  seconds: number;
  events: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Ensures the business table the writers insert into exists. */
export async function ensureOrdersTable(env: BenchEnv): Promise<void> {
  await env.pool.query(
    `create table if not exists bench_orders (
       id bigserial primary key, customer text not null, total numeric not null,
       created_at timestamptz not null default now())`,
  );
}

/** Runs `writers` writers offering `rate` events per second in total for `seconds`. */
export async function measureLatency(
  env: BenchEnv,
  options: { rate: number; writers: number; seconds: number; relay?: 'in-process' | 'process' },
  log: (line: string) => void,
): Promise<LatencyResult> {
  const placement = options.relay ?? 'in-process';
  const schema = 'bench_latency';
  await freshSchema(env, schema);
  await ensureOrdersTable(env);
  const committedAt = new Map<string, number>();
  const ackedAt = new Map<string, number>();
  const queue = await drainedQueue(env, 'outbox-bench-latency', 'classic', (message, at) => {
    if (placement === 'process') ackedAt.set(String(message.properties.messageId), at);
  });
  let stopRelay: () => Promise<unknown>;
  if (placement === 'process') {
    const relay = spawnRelay(env, schema);
    stopRelay = () => relay.stop();
    await relaysRunning(env, 1);
  } else {
    const runtime = await inProcessRelay(env, schema, (message) =>
      ackedAt.set(message.messageId, performance.now()),
    );
    stopRelay = () => runtime.stop();
    await runtime.start();
  }
  let clients: pg.Client[] = [];
  try {
    clients = await connectClients(env, options.writers);
    const end = performance.now() + 100 + options.seconds * 1000;
    await pacedWriters(
      clients,
      options.rate,
      () => performance.now() >= end,
      async (client, w, k) => {
        await client.query('begin');
        await client.query('insert into bench_orders (customer, total) values ($1, $2)', [
          `c${w}`,
          k,
        ]);
        const [row] = await enqueue(
          client,
          {
            tenantId: `tenant-${(w * 7 + k) % 100}`,
            exchange: EXCHANGE,
            routingKey: queue.routingKey,
            type: 'order.created',
            payload: benchPayload(k, 100),
            contentType: 'application/json',
          },
          { schema },
        );
        await client.query('commit');
        if (row) committedAt.set(row.messageId, performance.now());
      },
    );
    await waitForAcks(committedAt, ackedAt);
  } finally {
    await stopRelay();
    for (const client of clients) await client.end().catch(() => undefined);
    await queue.close();
  }
  // The first second warms up connections and plans; it is not counted.
  const warm = [...committedAt.entries()].slice(Math.ceil(options.rate));
  const latencies = ackLatencies(warm, ackedAt);
  const result: LatencyResult = {
    relay: placement,
    offeredPerSecond: options.rate,
    writers: options.writers,
    seconds: options.seconds,
    events: latencies.length,
    p50: percentile(latencies, 50),
    p90: percentile(latencies, 90),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
  };
  log(
    `  ${placement === 'process' ? 'relay in its own process, commit → arrival' : 'relay in process, commit → broker ack'} at ${options.rate}/s from ${options.writers} writers: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms (${result.events} events)`,
  );
  await env.pool.query(`drop schema "${schema}" cascade`);
  return result;
}
