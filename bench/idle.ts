/**
 * What an idle relay costs and how fast it wakes up: the CPU of one
 * `outbox-relay run` process and of its PostgreSQL backends while nothing is
 * written, then the time from the commit of the first event after a silence
 * to its arrival at a consumer, after silences of a few seconds and of a
 * minute (it must not grow with the silence).
 */
import { enqueue } from '../src/outbox/enqueue.js';
import {
  type BenchEnv,
  CpuTracker,
  drainedQueue,
  EXCHANGE,
  freshSchema,
  percentile,
  relayBackendPids,
  spawnRelay,
} from './harness.js';
import { benchPayload } from './raw-publisher.js';

/** CPU as a share of one core; latencies in ms. */
export interface IdleResult {
  cpuWindowSeconds: number;
  relayCore: number;
  postgresCore: number;
  /** PostgreSQL backends the relay had during the window (pool, liveness lock, LISTEN). */
  backends: number;
  /** Commit → consumer arrival of the first event after each silence. */
  firstEvents: { silenceSeconds: number; ms: number }[];
  firstEventP50Ms: number;
  firstEventMaxMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Wait after start-up before the CPU window: V8 shrinks the heap of a newly
 * idle process with a few full collections about 8 s after start (seen with
 * --trace-gc), which is start-up cost, not what idling costs.
 */
const SETTLE_MS = 10_000;

/**
 * Starts a relay as ops run it (HTTP endpoint on, so the backlog gauges are
 * read too), lets it go idle, samples its CPU and its backends' CPU every
 * second for `cpuSeconds`, then writes one event after each silence of
 * `silences` (seconds) and times its arrival.
 */
export async function measureIdle(
  env: BenchEnv,
  options: { cpuSeconds: number; silences: readonly number[] },
  log: (line: string) => void,
): Promise<IdleResult> {
  const schema = 'bench_idle';
  await freshSchema(env, schema);
  const queue = await drainedQueue(env, 'outbox-bench-idle', 'classic');
  const relay = spawnRelay(env, schema, { OUTBOX_HTTP_PORT: '0', OUTBOX_HTTP_HOST: '127.0.0.1' });
  let seq = 0;
  /** Commits one event and resolves its commit → arrival time. */
  const oneEvent = async (): Promise<number> => {
    const before = queue.arrivals.length;
    await enqueue(
      env.pool,
      {
        tenantId: 'tenant-idle',
        exchange: EXCHANGE,
        routingKey: queue.routingKey,
        type: 'bench.event',
        payload: benchPayload(seq++, 1),
        contentType: 'application/json',
      },
      { schema },
    );
    const committed = performance.now();
    await queue.waitFor(before + 1, 30_000);
    return Math.max(0, (queue.arrivals[before] as number) - committed);
  };
  try {
    // The first event proves the relay runs (it includes start-up, so it is not counted).
    await oneEvent();
    await sleep(SETTLE_MS);
    const tracker = new CpuTracker(async () => [relay.pid, ...(await relayBackendPids(env))]);
    const relayOnly = new CpuTracker(async () => [relay.pid]);
    await tracker.start();
    await relayOnly.start();
    const until = performance.now() + options.cpuSeconds * 1000;
    while (performance.now() < until) {
      await sleep(1000);
      await tracker.sample();
      await relayOnly.sample();
    }
    const all = tracker.used();
    const own = relayOnly.used();
    const firstEvents = [
      { silenceSeconds: options.cpuSeconds + SETTLE_MS / 1000, ms: await oneEvent() },
    ];
    for (const silence of options.silences) {
      // Up to half a second more at random, so the commits do not fall at one
      // phase of the watcher's reads (a fixed silence would always hit the same one).
      const ms = silence * 1000 + Math.random() * 500;
      await sleep(ms);
      firstEvents.push({ silenceSeconds: Math.round(ms / 100) / 10, ms: await oneEvent() });
    }
    const latencies = firstEvents.map((e) => e.ms);
    const result: IdleResult = {
      cpuWindowSeconds: all.wallSeconds,
      relayCore: own.cpuSeconds / own.wallSeconds,
      postgresCore: (all.cpuSeconds - own.cpuSeconds) / all.wallSeconds,
      backends: all.processes - 1,
      firstEvents,
      firstEventP50Ms: percentile(latencies, 50),
      firstEventMaxMs: percentile(latencies, 100),
    };
    log(
      `  idle for ${all.wallSeconds.toFixed(0)} s: relay ${(100 * result.relayCore).toFixed(2)}% of a core, its ${result.backends} PostgreSQL backends ${(100 * result.postgresCore).toFixed(2)}%`,
    );
    log(
      `  first event after a silence, commit → arrival: ${firstEvents.map((e) => `${e.ms.toFixed(1)} ms (${e.silenceSeconds} s)`).join(', ')}`,
    );
    return result;
  } finally {
    await relay.stop();
    await queue.close();
    await env.pool.query(`drop schema if exists "${schema}" cascade`);
  }
}
