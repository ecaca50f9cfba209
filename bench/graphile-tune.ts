/**
 * Tries graphile-worker settings on the throughput workload (classic queue),
 * each in turn over a few rounds, and prints the median rate of each; the
 * best becomes GRAPHILE_SETTINGS. Run under the heavy-work lock:
 *
 *   flock /work/heavy.lock npx tsx bench/graphile-tune.ts [messages] [rounds] [settings JSON]
 *
 * With a settings JSON (fields of GraphileSettings over the base below), only that one is run.
 */
import { type GraphileSettings, installGraphileWorker } from './graphile-outbox.js';
import { closeBenchEnv, drainedQueue, openBenchEnv } from './harness.js';
import { cpuLine, graphileDrain, median } from './throughput.js';

const messages = Number(process.argv[2] ?? 20_000);
const rounds = Number(process.argv[3] ?? 2);
const base: GraphileSettings = {
  concurrency: 100,
  maxPoolSize: 10,
  pollInterval: 2000,
  localQueueSize: 1000,
  completeJobBatchDelay: 0,
  useNodeTime: true,
  preparedStatements: true,
};
/** The candidates: graphile-worker's documented performance set-up, and variations around it. */
const candidates: Record<string, GraphileSettings> = process.argv[4]
  ? { given: { ...base, ...(JSON.parse(process.argv[4]) as Partial<GraphileSettings>) } }
  : {
      'docs perf preset: concurrency 24, pool 25, local queue 500, batch 0': {
        ...base,
        concurrency: 24,
        maxPoolSize: 25,
        localQueueSize: 500,
        useNodeTime: false,
      },
      'concurrency 24, pool 26, no local queue, no completion batching': {
        ...base,
        concurrency: 24,
        maxPoolSize: 26,
        localQueueSize: -1,
        completeJobBatchDelay: -1,
      },
      'concurrency 100, pool 10, local queue 1000, batch 0, node time': base,
      'concurrency 100, … useNodeTime off': { ...base, useNodeTime: false },
      'concurrency 100, … batch 5 ms': { ...base, completeJobBatchDelay: 5 },
      'concurrency 250, pool 10, local queue 1000, batch 0': { ...base, concurrency: 250 },
      'concurrency 500, pool 10, local queue 2000, batch 0': {
        ...base,
        concurrency: 500,
        localQueueSize: 2000,
      },
    };

const log = (line: string) => process.stderr.write(`${line}\n`);
const env = await openBenchEnv(
  process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
);
try {
  const queue = await drainedQueue(env, 'outbox-bench-graphile-tune', 'classic');
  await installGraphileWorker(env.databaseUrl);
  const rates: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, settings] of Object.entries(candidates)) {
      const drain = await graphileDrain(env, queue, messages, settings);
      rates[name] = [...(rates[name] ?? []), drain.rate];
      log(
        `round ${round + 1}: ${name}: ${Math.round(drain.rate)} msg/s; CPU µs/msg ${cpuLine(drain.cpu)}`,
      );
    }
  }
  log(`\nmedians over ${rounds} rounds of ${messages} messages:`);
  for (const [name, values] of Object.entries(rates)) {
    log(`  ${Math.round(median(values))} msg/s (${values.map(Math.round).join(', ')})  ${name}`);
  }
  await queue.close();
} finally {
  await closeBenchEnv(env);
}
