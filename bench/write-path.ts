/**
 * What the outbox costs the application's write path: the same business
 * transaction (insert an order) with and without one enqueue, and with the
 * opt-in writer-side NOTIFY, at 1 and 32 concurrent writers; and one enqueue
 * of 1,000 messages. No relay runs meanwhile: this isolates the writers' cost
 * from the CPU a relay on the same two cores would take.
 */
import pg from 'pg';
import { enqueue } from '../src/outbox/enqueue.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { proxyFor } from '../test/helpers/tcp-proxy.js';
import {
  type BenchEnv,
  connectClients,
  EXCHANGE,
  freshSchema,
  percentile,
  spawnRelay,
} from './harness.js';
import { ensureOrdersTable } from './latency.js';
import { benchPayload } from './raw-publisher.js';

/** One configuration's figures. */
export interface WritePathRun {
  mode: 'plain' | 'outbox' | 'outbox+notify';
  writers: number;
  transactionsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** All configurations plus the ratios the issue asks for. */
export interface WritePathResult {
  runs: WritePathRun[];
  /** (p50 with outbox − p50 without) / p50 without, per writer count. */
  addedP50: Record<string, number>;
  /** Throughput with the outbox / without, at 32 writers; and with NOTIFY. */
  throughputRatio32: number;
  throughputRatio32Notify: number;
  enqueue1000P50Ms: number;
}

const SCHEMA = 'bench_write';

/** The bench's k-th event: one of 100 tenants, a small JSON payload. */
export function benchEvent(k: number): OutboxMessage {
  return {
    tenantId: `tenant-${k % 100}`,
    exchange: EXCHANGE,
    routingKey: 'orders',
    type: 'order.created',
    payload: benchPayload(k, 100),
    contentType: 'application/json',
  };
}

async function run(
  env: BenchEnv,
  mode: WritePathRun['mode'],
  writers: number,
  seconds: number,
  schema = SCHEMA,
): Promise<WritePathRun> {
  const clients = await connectClients(env, writers);
  let latencies: number[];
  try {
    latencies = await businessTransactions(clients, seconds, (client, k) =>
      mode === 'plain'
        ? undefined
        : enqueue(client, benchEvent(k), { schema, notify: mode === 'outbox+notify' }),
    );
  } finally {
    for (const client of clients) await client.end().catch(() => undefined);
  }
  return {
    mode,
    writers,
    transactionsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}

/** Measures every configuration, interleaved so drift hits all alike. */
export async function measureWritePath(
  env: BenchEnv,
  options: { seconds: number; enqueueCalls: number },
  log: (line: string) => void,
): Promise<WritePathResult> {
  await freshSchema(env, SCHEMA);
  await ensureOrdersTable(env);
  const runs: WritePathRun[] = [];
  for (const writers of [1, 32]) {
    for (const mode of ['plain', 'outbox', 'outbox+notify'] as const) {
      const result = await run(env, mode, writers, options.seconds);
      runs.push(result);
      log(
        `  ${mode.padEnd(13)} ${String(writers).padStart(2)} writers: ${Math.round(result.transactionsPerSecond)} tx/s, p50 ${result.p50Ms.toFixed(2)} ms`,
      );
    }
  }
  const find = (mode: WritePathRun['mode'], writers: number) =>
    runs.find((r) => r.mode === mode && r.writers === writers) as WritePathRun;
  const addedP50: Record<string, number> = {};
  for (const writers of [1, 32]) {
    addedP50[String(writers)] = find('outbox', writers).p50Ms / find('plain', writers).p50Ms - 1;
  }

  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  const thousand = Array.from({ length: 1000 }, (_, k) => benchEvent(k));
  const calls: number[] = [];
  try {
    for (let i = 0; i < options.enqueueCalls; i++) {
      await client.query('begin');
      const started = performance.now();
      await enqueue(client, thousand, { schema: SCHEMA });
      calls.push(performance.now() - started);
      await client.query('commit');
    }
  } finally {
    await client.end();
  }
  const enqueue1000P50Ms = percentile(calls, 50);
  log(`  enqueue of 1,000 messages in one call: p50 ${enqueue1000P50Ms.toFixed(1)} ms`);
  await env.pool.query(`drop schema "${SCHEMA}" cascade`);
  return {
    runs,
    addedP50,
    throughputRatio32:
      find('outbox', 32).transactionsPerSecond / find('plain', 32).transactionsPerSecond,
    throughputRatio32Notify:
      find('outbox+notify', 32).transactionsPerSecond / find('plain', 32).transactionsPerSecond,
    enqueue1000P50Ms,
  };
}

/** One statement style's medians over its rounds. */
export interface NamingFigures {
  transactionsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Named vs unnamed enqueue statements at one writer count. */
export interface StatementNamingRun {
  writers: number;
  rounds: number;
  named: NamingFigures;
  unnamed: NamingFigures;
  /** unnamed p50 / named p50 − 1: what parsing every statement adds to a business transaction. */
  addedP50: number;
  /** unnamed throughput / named throughput. */
  throughputRatio: number;
}

/** Business transactions (an order, one enqueue) on `clients` for `seconds`; their latencies. */
function timedTransactions(
  clients: readonly pg.Client[],
  seconds: number,
  preparedStatements: boolean,
  schema: string,
): Promise<number[]> {
  return businessTransactions(clients, seconds, (client, k) =>
    enqueue(client, benchEvent(k), { schema, preparedStatements }),
  );
}

/**
 * Business transactions on `clients` for `seconds`: begin, insert an order,
 * `step` (the outbox part, or nothing), commit. Returns their latencies (ms).
 */
export async function businessTransactions(
  clients: readonly pg.Client[],
  seconds: number,
  step: (client: pg.Client, k: number) => Promise<unknown> | undefined,
): Promise<number[]> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (client, w) => {
      for (let k = 0; performance.now() < end; k++) {
        const started = performance.now();
        await client.query('begin');
        await client.query('insert into bench_orders (customer, total) values ($1, $2)', [
          `c${w}`,
          k,
        ]);
        await step(client, k);
        await client.query('commit');
        latencies.push(performance.now() - started);
      }
    }),
  );
  return latencies;
}

/**
 * What unnamed statements (enqueue's default, for transaction poolers) cost
 * against named ones (`preparedStatements: true`): the same writers, on the
 * same connections, alternate between the two for `rounds` rounds of
 * `seconds` each (ABBA order, so drift and warm-up hit both alike); each
 * figure is the median over a style's rounds.
 */
export async function measureStatementNaming(
  env: BenchEnv,
  options: { rounds: number; seconds: number; writerCounts?: readonly number[] },
  log: (line: string) => void,
): Promise<StatementNamingRun[]> {
  const schema = 'bench_naming';
  await freshSchema(env, schema);
  await ensureOrdersTable(env);
  const results: StatementNamingRun[] = [];
  try {
    for (const writers of options.writerCounts ?? [1, 32]) {
      const clients = await connectClients(env, writers);
      const rounds = { named: [] as NamingFigures[], unnamed: [] as NamingFigures[] };
      try {
        for (let round = 0; round < options.rounds; round++) {
          const order =
            round % 2 === 0 ? (['named', 'unnamed'] as const) : (['unnamed', 'named'] as const);
          for (const style of order) {
            const latencies = await timedTransactions(
              clients,
              options.seconds,
              style === 'named',
              schema,
            );
            rounds[style].push({
              transactionsPerSecond: latencies.length / options.seconds,
              p50Ms: percentile(latencies, 50),
              p99Ms: percentile(latencies, 99),
            });
          }
        }
      } finally {
        for (const client of clients) await client.end().catch(() => undefined);
      }
      const median = (figures: NamingFigures[]): NamingFigures => ({
        transactionsPerSecond: percentile(
          figures.map((f) => f.transactionsPerSecond),
          50,
        ),
        p50Ms: percentile(
          figures.map((f) => f.p50Ms),
          50,
        ),
        p99Ms: percentile(
          figures.map((f) => f.p99Ms),
          50,
        ),
      });
      const named = median(rounds.named);
      const unnamed = median(rounds.unnamed);
      const run: StatementNamingRun = {
        writers,
        rounds: options.rounds,
        named,
        unnamed,
        addedP50: unnamed.p50Ms / named.p50Ms - 1,
        throughputRatio: unnamed.transactionsPerSecond / named.transactionsPerSecond,
      };
      results.push(run);
      log(
        `  ${String(writers).padStart(2)} writers: named ${Math.round(named.transactionsPerSecond)} tx/s, p50 ${named.p50Ms.toFixed(3)} ms; ` +
          `unnamed ${Math.round(unnamed.transactionsPerSecond)} tx/s, p50 ${unnamed.p50Ms.toFixed(3)} ms ` +
          `(p50 ${(100 * run.addedP50).toFixed(1)}%, throughput ×${run.throughputRatio.toFixed(3)})`,
      );
    }
  } finally {
    await env.pool.query(`drop schema if exists "${schema}" cascade`);
  }
  return results;
}

/** Enqueue throughput with the broker reachable and unreachable, a relay running both times. */
export interface BrokerDownResult {
  upPerSecond: number;
  downPerSecond: number;
  ratio: number;
  pendingAfter: number;
}

/**
 * The same 32 writers (insert an order, enqueue one event) for `seconds`
 * while a relay publishes through a TCP proxy, then again after the proxy is
 * closed: the broker is unreachable for the relay, which keeps reconnecting.
 */
export async function measureBrokerDown(
  env: BenchEnv,
  seconds: number,
  log: (line: string) => void,
): Promise<BrokerDownResult> {
  const schema = 'bench_broker_down';
  await freshSchema(env, schema);
  await ensureOrdersTable(env);
  const proxy = await proxyFor(env.amqpUrl);
  const relay = spawnRelay(env, schema, { AMQP_URL: proxy.url });
  try {
    const up = await run(env, 'outbox', 32, seconds, schema);
    await proxy.close();
    const down = await run(env, 'outbox', 32, seconds, schema);
    const { rows } = await env.pool.query(`select count(*)::int as n from "${schema}".messages`);
    const result = {
      upPerSecond: up.transactionsPerSecond,
      downPerSecond: down.transactionsPerSecond,
      ratio: down.transactionsPerSecond / up.transactionsPerSecond,
      pendingAfter: rows[0].n as number,
    };
    log(
      `  32 writers enqueueing: ${Math.round(result.upPerSecond)} tx/s with the broker up, ${Math.round(result.downPerSecond)} tx/s with it unreachable (${result.pendingAfter} events waiting in the outbox)`,
    );
    return result;
  } finally {
    await relay.stop();
    await proxy.close().catch(() => undefined);
    await env.pool.query(`drop schema "${schema}" cascade`);
  }
}
