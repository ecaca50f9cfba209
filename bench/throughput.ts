/**
 * Throughput: outbox-relay draining outbox rows end to end against the raw
 * amqplib confirmed-publish rate (the broker's limit here), the cheapest relay
 * there can be (the ceiling for any relay) and graphile-worker used as an
 * outbox, for classic and quorum queues, in alternating rounds of one run;
 * and a naive relay. Every publisher but the naive one runs in its own
 * process, so the CPU per message splits into publisher, PostgreSQL,
 * RabbitMQ and consumer (this process).
 */
import { spawnComparator } from './comparator-process.js';
import {
  GRAPHILE_SETTINGS,
  type GraphileSettings,
  insertGraphileBacklog,
  installGraphileWorker,
} from './graphile-outbox.js';
import {
  arrivalRate,
  type BenchEnv,
  type DrainedQueue,
  drainedQueue,
  freshSchema,
  insertBacklog,
  type RelayProcess,
  spawnRelay,
} from './harness.js';
import { naiveDrain } from './naive-relay.js';
import { type CpuPerMessage, DrainCpu } from './process-cpu.js';

export type Comparator = 'raw' | 'ceiling' | 'relay' | 'graphile';
const COMPARATORS: readonly Comparator[] = ['raw', 'ceiling', 'relay', 'graphile'];
const PARTIES = ['publisher', 'postgres', 'rabbitmq', 'consumer', 'machine'] as const;

/** One drain: its rate over the consumer's first to last arrival, and CPU per message meanwhile. */
export interface Drain {
  rate: number;
  cpu: CpuPerMessage;
}

/** One round as run: each comparator once per variant (graphile-worker has one). */
export interface RoundDrains {
  order: Comparator[];
  /** Every variant's drain, by comparator and variant, e.g. `raw` → `2 channels`. */
  drains: Record<Comparator, Record<string, Drain>>;
}

/** A round with, for each comparator, the drain of its chosen variant ({@link chooseVariants}). */
export interface ThroughputRound extends RoundDrains {
  best: Record<Comparator, Drain & { variant: string }>;
}

/** Rates in messages per second, medians over the rounds. */
export interface ThroughputResult {
  messages: number;
  queueType: 'classic' | 'quorum';
  rounds: ThroughputRound[];
  raw: number;
  ceiling: number;
  relay: number;
  graphile: number;
  /** Medians of the per-round ratios (each round's pair ran minutes apart at most). */
  ratio: number;
  relayToCeiling: number;
  /**
   * Relay / ceiling with the earlier rule: the ceiling's faster variant in
   * each round, which favours it under noise (the better of two draws).
   */
  relayToCeilingFasterEachRound: number;
  relayToGraphile: number;
  ceilingToRaw: number;
  /** Median CPU per message (µs) of each party, for each comparator. */
  cpu: Record<Comparator, CpuPerMessage>;
  /** Machine CPU (both cores, all processes) per message, µs. */
  rawCpuMicros: number;
  relayCpuMicros: number;
}

const TENANTS = 100;
const DRAIN_TIMEOUT_MS = 300_000;

/**
 * The relay's variants, as `outbox-relay run` settings: its default confirm
 * window, and the larger one docs/configuration.md suggests trying for quorum
 * queues (OUTBOX_MAX_IN_FLIGHT; on classic queues it measured slower).
 */
const RELAY_VARIANTS: Record<string, Record<string, string>> = {
  '500 unconfirmed': {},
  '1000 unconfirmed': { OUTBOX_MAX_IN_FLIGHT: '1000' },
};

/** The median (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Raw, ceiling, relay and graphile-worker in `rounds` alternating rounds on one queue type. */
export async function measureThroughput(
  env: BenchEnv,
  queueType: 'classic' | 'quorum',
  options: { messages: number; rounds: number; graphile?: GraphileSettings },
  log: (line: string) => void,
): Promise<ThroughputResult> {
  const { messages } = options;
  const queue = await drainedQueue(env, `outbox-bench-${queueType}`, queueType);
  await installGraphileWorker(env.databaseUrl);
  const ran: RoundDrains[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      // Each round starts one place further along, so drift over the run
      // (checkpoints, the broker's state, other load) spreads over all four.
      const order = COMPARATORS.map(
        (_, i) => COMPARATORS[(i + round) % COMPARATORS.length] as Comparator,
      );
      const drains = { raw: {}, ceiling: {}, relay: {}, graphile: {} } as RoundDrains['drains'];
      const keep = (comparator: Comparator, variant: string, drain: Drain) => {
        log(
          `  round ${round + 1}, ${queueType}: ${comparator} (${variant}) ${Math.round(drain.rate)} msg/s; CPU µs/msg ${cpuLine(drain.cpu)}`,
        );
        drains[comparator][variant] = drain;
      };
      for (const comparator of order) {
        switch (comparator) {
          case 'raw':
            for (const channels of [1, 2]) {
              const drain = await measureDrain(queue, messages, true, () =>
                spawnComparator({
                  kind: 'raw',
                  databaseUrl: env.databaseUrl,
                  amqpUrl: env.amqpUrl,
                  routingKey: queue.routingKey,
                  messages,
                  channels,
                  tenants: TENANTS,
                }),
              );
              keep('raw', `${channels} channel${channels > 1 ? 's' : ''}`, drain);
            }
            break;
          case 'ceiling':
            for (const workers of [1, 2]) {
              await outboxBacklog(env, 'bench_tp_ceiling', queue, messages);
              const drain = await measureDrain(queue, messages, true, () =>
                spawnComparator({
                  kind: 'ceiling',
                  databaseUrl: env.databaseUrl,
                  amqpUrl: env.amqpUrl,
                  schema: 'bench_tp_ceiling',
                  workers,
                }),
              );
              keep('ceiling', `${workers} worker${workers > 1 ? 's' : ''}`, drain);
            }
            await env.pool.query('drop schema "bench_tp_ceiling" cascade');
            break;
          case 'relay':
            for (const [variant, settings] of Object.entries(RELAY_VARIANTS)) {
              await outboxBacklog(env, 'bench_tp_relay', queue, messages);
              const drain = await measureDrain(queue, messages, false, () =>
                spawnRelay(env, 'bench_tp_relay', settings),
              );
              keep('relay', variant, drain);
              await env.pool.query('drop schema "bench_tp_relay" cascade');
            }
            break;
          case 'graphile': {
            const settings = options.graphile ?? GRAPHILE_SETTINGS;
            const drain = await graphileDrain(env, queue, messages, settings);
            keep('graphile', `concurrency ${settings.concurrency}`, drain);
            break;
          }
        }
      }
      ran.push({ order, drains });
    }
    const chosen = chooseVariants(ran);
    const rounds: ThroughputRound[] = ran.map((r) => ({
      ...r,
      best: Object.fromEntries(
        COMPARATORS.map((c) => [c, { ...(r.drains[c][chosen[c]] as Drain), variant: chosen[c] }]),
      ) as ThroughputRound['best'],
    }));
    const fastestRate = (r: ThroughputRound, c: Comparator) =>
      Math.max(...Object.values(r.drains[c]).map((d) => d.rate));
    const rateOf = (c: Comparator) => median(rounds.map((r) => r.best[c].rate));
    const ratioOf = (a: Comparator, b: Comparator) =>
      median(rounds.map((r) => r.best[a].rate / r.best[b].rate));
    const cpu = {} as Record<Comparator, CpuPerMessage>;
    for (const c of COMPARATORS) {
      cpu[c] = Object.fromEntries(
        PARTIES.map((p) => [p, median(rounds.map((r) => r.best[c].cpu[p]))]),
      ) as unknown as CpuPerMessage;
    }
    const result: ThroughputResult = {
      messages,
      queueType,
      rounds,
      raw: rateOf('raw'),
      ceiling: rateOf('ceiling'),
      relay: rateOf('relay'),
      graphile: rateOf('graphile'),
      ratio: ratioOf('relay', 'raw'),
      relayToCeiling: ratioOf('relay', 'ceiling'),
      relayToCeilingFasterEachRound: median(
        rounds.map((r) => r.best.relay.rate / fastestRate(r, 'ceiling')),
      ),
      relayToGraphile: ratioOf('relay', 'graphile'),
      ceilingToRaw: ratioOf('ceiling', 'raw'),
      cpu,
      rawCpuMicros: cpu.raw.machine,
      relayCpuMicros: cpu.relay.machine,
    };
    log(
      `  ${queueType}, medians of ${rounds.length} rounds (msg/s; per round in brackets; variants: ${COMPARATORS.map((c) => `${c} ${chosen[c]}`).join(', ')}):`,
    );
    for (const c of COMPARATORS) {
      log(
        `    ${c.padEnd(8)} ${String(Math.round(rateOf(c))).padStart(6)} (${rounds.map((r) => Math.round(r.best[c].rate)).join(', ')}); CPU µs/msg ${cpuLine(cpu[c])}`,
      );
    }
    log(
      `    relay/ceiling ${result.relayToCeiling.toFixed(2)}, relay/graphile ${result.relayToGraphile.toFixed(2)}, relay/raw ${result.ratio.toFixed(2)}, ceiling/raw ${result.ceilingToRaw.toFixed(2)}`,
    );
    return result;
  } finally {
    await queue.close();
  }
}

/**
 * Each comparator's variant for every round: the one with the higher median
 * rate over all rounds (raw: one or two channels; the ceiling: one or two
 * workers; the relay: a confirm window of 500 or 1,000). Choosing per round,
 * the faster of two drains run minutes apart, would give each the better of
 * two draws of this machine's noise in every round.
 */
export function chooseVariants(rounds: readonly RoundDrains[]): Record<Comparator, string> {
  const chosen = {} as Record<Comparator, string>;
  for (const c of COMPARATORS) {
    const names = Object.keys(rounds[0]?.drains[c] ?? {});
    const medianOf = (name: string) =>
      median(rounds.map((r) => r.drains[c][name]?.rate ?? Number.NaN));
    chosen[c] = names.reduce((a, b) => (medianOf(b) > medianOf(a) ? b : a));
  }
  return chosen;
}

/** `publisher / postgres / rabbitmq / consumer / machine` in µs. */
export function cpuLine(cpu: CpuPerMessage): string {
  return PARTIES.map((p) => cpu[p].toFixed(0)).join(' / ');
}

/** A fresh outbox schema holding `messages` pending rows, vacuumed and checkpointed. */
async function outboxBacklog(
  env: BenchEnv,
  schema: string,
  queue: DrainedQueue,
  messages: number,
): Promise<void> {
  await freshSchema(env, schema);
  await insertBacklog(env, schema, queue.routingKey, messages, { tenants: TENANTS });
  await settle(env, `"${schema}".messages`);
}

/**
 * Vacuums and analyses the table just filled, then checkpoints, so that
 * neither the visibility-map work nor the flushing of the pages just written
 * falls inside the drain that follows.
 */
async function settle(env: BenchEnv, table: string): Promise<void> {
  await env.pool.query(`vacuum analyze ${table}`);
  await env.pool.query('checkpoint');
}

/** graphile-worker draining `messages` jobs added just before, with `settings`. */
export async function graphileDrain(
  env: BenchEnv,
  queue: DrainedQueue,
  messages: number,
  settings: GraphileSettings,
): Promise<Drain> {
  await insertGraphileBacklog(env.pool, queue.routingKey, messages, TENANTS);
  await settle(env, 'graphile_worker._private_jobs');
  return measureDrain(queue, messages, false, () =>
    spawnComparator({
      kind: 'graphile',
      databaseUrl: env.databaseUrl,
      amqpUrl: env.amqpUrl,
      settings,
    }),
  );
}

/**
 * Starts a publisher and waits until `messages` have arrived. The CPU window
 * opens at the first arrival (so process start-up is not counted, whichever
 * the comparator) and closes at the last. `exitsWhenDone`: the process ends
 * by itself (raw, ceiling); otherwise it is stopped once all have arrived.
 */
async function measureDrain(
  queue: DrainedQueue,
  messages: number,
  exitsWhenDone: boolean,
  start: () => RelayProcess,
): Promise<Drain> {
  queue.reset();
  const publisher = start();
  let exitCode: number | null | undefined;
  void publisher.exited.then((code) => {
    exitCode = code;
  });
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  const waitUntil = async (count: number) => {
    while (queue.arrivals.length < count) {
      if (exitCode !== undefined && exitCode !== 0 && queue.arrivals.length < count) {
        throw new Error(`${queue.name}: the publisher exited with ${exitCode}`);
      }
      if (performance.now() > deadline) {
        await publisher.stop();
        throw new Error(
          `${queue.name}: only ${queue.arrivals.length} of ${messages} messages arrived in ${DRAIN_TIMEOUT_MS} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  };
  await waitUntil(1);
  const cpu = new DrainCpu(publisher.pid);
  await cpu.start();
  const first = queue.arrivals.length;
  const sampler = setInterval(() => void cpu.sample(), 250);
  try {
    await waitUntil(messages);
  } finally {
    clearInterval(sampler);
  }
  await cpu.sample();
  const drain = { rate: arrivalRate(queue.arrivals), cpu: cpu.perMessage(messages - first) };
  const code = exitsWhenDone ? await publisher.exited : await publisher.stop();
  if (exitsWhenDone && code !== 0)
    throw new Error(`${queue.name}: the publisher exited with ${code}`);
  return drain;
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
