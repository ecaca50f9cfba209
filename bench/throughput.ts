/**
 * Throughput: the relay draining outbox rows end to end against the raw
 * amqplib confirmed-publish rate (the broker's limit here), for classic and
 * quorum queues, and against a naive relay — all in the same run.
 */
import {
  arrivalRate,
  type BenchEnv,
  cpuMicrosPerMessage,
  drainedQueue,
  freshSchema,
  insertBacklog,
  machineTicks,
  spawnRelay,
} from './harness.js';
import { naiveDrain } from './naive-relay.js';
import { rawPublish } from './raw-publisher.js';

/** Rates in messages per second. */
export interface ThroughputResult {
  messages: number;
  queueType: 'classic' | 'quorum';
  /** Best raw rate over 1 and 2 channels (the ceiling). */
  raw: number;
  rawByChannels: Record<string, number>;
  relay: number;
  /** Relay wall time including process start-up, for reference. */
  relayWallSeconds: number;
  ratio: number;
  /** Machine CPU (both cores, every process) spent per message, µs: what bounds each path. */
  rawCpuMicros: number;
  relayCpuMicros: number;
}

const TENANTS = 100;

/** Raw ceiling vs relay for one queue type. */
export async function measureThroughput(
  env: BenchEnv,
  queueType: 'classic' | 'quorum',
  messages: number,
  log: (line: string) => void,
): Promise<ThroughputResult> {
  const schema = `bench_tp_${queueType}`;
  const queue = await drainedQueue(env, `outbox-bench-${queueType}`, queueType);
  try {
    const rawByChannels: Record<string, number> = {};
    let rawCpuMicros = Number.POSITIVE_INFINITY;
    for (const channels of [1, 2]) {
      queue.reset();
      const before = machineTicks();
      await rawPublish(env, queue.routingKey, messages, {
        channels,
        window: 500,
        tenants: TENANTS,
      });
      await queue.waitFor(messages, 120_000);
      rawCpuMicros = Math.min(rawCpuMicros, cpuMicrosPerMessage(before, machineTicks(), messages));
      rawByChannels[String(channels)] = arrivalRate(queue.arrivals);
      log(
        `  raw amqplib, ${channels} channel(s), ${queueType}: ${Math.round(rawByChannels[String(channels)] ?? 0)} msg/s`,
      );
    }
    const raw = Math.max(...Object.values(rawByChannels));

    await freshSchema(env, schema);
    await insertBacklog(env, schema, queue.routingKey, messages, { tenants: TENANTS });
    await env.pool.query(`vacuum analyze "${schema}".messages`);
    queue.reset();
    const started = performance.now();
    const before = machineTicks();
    const relay = spawnRelay(env, schema);
    await queue.waitFor(messages, 300_000);
    const relayCpuMicros = cpuMicrosPerMessage(before, machineTicks(), messages);
    const relayWallSeconds = (performance.now() - started) / 1000;
    await relay.stop();
    const relayRate = arrivalRate(queue.arrivals);
    log(
      `  outbox-relay, ${queueType}: ${Math.round(relayRate)} msg/s (${relayWallSeconds.toFixed(1)} s wall); machine CPU per message: raw ${rawCpuMicros.toFixed(0)} µs, relay ${relayCpuMicros.toFixed(0)} µs`,
    );
    await env.pool.query(`drop schema "${schema}" cascade`);
    return {
      messages,
      queueType,
      raw,
      rawByChannels,
      relay: relayRate,
      relayWallSeconds,
      ratio: relayRate / raw,
      rawCpuMicros,
      relayCpuMicros,
    };
  } finally {
    await queue.close();
  }
}

/** What the naive relay achieved on the same messages. */
export interface NaiveResult {
  messages: number;
  naive: number;
}

/** The naive relay draining `messages` rows to a classic queue. */
export async function measureNaive(
  env: BenchEnv,
  messages: number,
  log: (line: string) => void,
): Promise<NaiveResult> {
  const schema = 'bench_naive';
  const queue = await drainedQueue(env, 'outbox-bench-naive', 'classic');
  try {
    await freshSchema(env, schema);
    await insertBacklog(env, schema, queue.routingKey, messages, { tenants: TENANTS });
    await env.pool.query(`vacuum analyze "${schema}".messages`);
    const started = performance.now();
    const published = await naiveDrain(env, schema);
    const seconds = (performance.now() - started) / 1000;
    await queue.waitFor(messages, 60_000);
    const naive = published / seconds;
    log(`  naive relay (SKIP LOCKED, confirm each, classic): ${Math.round(naive)} msg/s`);
    await env.pool.query(`drop schema "${schema}" cascade`);
    return { messages, naive };
  } finally {
    await queue.close();
  }
}
