/**
 * The relay's memory while draining a large backlog, and how throughput and
 * CPU split as relays are added on one database.
 */
import {
  arrivalRate,
  type BenchEnv,
  cpuSeconds,
  drainedQueue,
  freshSchema,
  insertBacklog,
  machineTicks,
  pidsMatching,
  type RelayProcess,
  rssMiB,
  spawnRelay,
} from './harness.js';

/** RSS samples in MiB. */
export interface MemoryResult {
  rows: number;
  rate: number;
  maxMiB: number;
  /** Mean RSS over the second tenth and the last tenth of the drain: flat when close. */
  earlyMiB: number;
  lateMiB: number;
}

/** Samples the relay's RSS every 250 ms while it drains `rows` 1 KiB rows. */
export async function measureMemory(
  env: BenchEnv,
  rows: number,
  log: (line: string) => void,
): Promise<MemoryResult> {
  const schema = 'bench_memory';
  const queue = await drainedQueue(env, 'outbox-bench-memory', 'classic');
  try {
    await freshSchema(env, schema);
    await insertBacklog(env, schema, queue.routingKey, rows, { tenants: 100 });
    await env.pool.query(`vacuum analyze "${schema}".messages`);
    const relay = spawnRelay(env, schema);
    const samples: number[] = [];
    const timer = setInterval(() => {
      const rss = rssMiB(relay.pid);
      if (rss !== undefined) samples.push(rss);
    }, 250);
    try {
      await queue.waitFor(rows, 600_000);
    } finally {
      clearInterval(timer);
    }
    await relay.stop();
    await env.pool.query(`drop schema "${schema}" cascade`);
    const tenth = Math.max(1, Math.floor(samples.length / 10));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
    const result: MemoryResult = {
      rows,
      rate: arrivalRate(queue.arrivals),
      maxMiB: Math.max(...samples),
      earlyMiB: mean(samples.slice(tenth, 2 * tenth)),
      lateMiB: mean(samples.slice(-tenth)),
    };
    log(
      `  relay RSS draining ${rows} rows: max ${result.maxMiB.toFixed(0)} MiB, early ${result.earlyMiB.toFixed(0)} MiB, late ${result.lateMiB.toFixed(0)} MiB`,
    );
    return result;
  } finally {
    await queue.close();
  }
}

/** Throughput and CPU (share of the machine's two cores) with `relays` relays. */
export interface HorizontalRun {
  relays: number;
  rate: number;
  machineBusy: number;
  cpu: { relays: number; postgres: number; rabbitmq: number; consumer: number };
}

/** CPU seconds per pid now, to diff later (a process that exits meanwhile is left out). */
function cpuSnapshot(pids: readonly number[]): Map<number, number> {
  const snapshot = new Map<number, number>();
  for (const pid of pids) {
    const seconds = cpuSeconds(pid);
    if (seconds !== undefined) snapshot.set(pid, seconds);
  }
  return snapshot;
}

/** CPU seconds used since `before` by the processes still alive. */
function cpuSince(before: ReadonlyMap<number, number>): number {
  let total = 0;
  for (const [pid, start] of before) {
    const now = cpuSeconds(pid);
    if (now !== undefined && now >= start) total += now - start;
  }
  return total;
}

/** Runs 1, 2 and 3 relays over `rows` rows each time. */
export async function measureHorizontal(
  env: BenchEnv,
  rows: number,
  log: (line: string) => void,
): Promise<HorizontalRun[]> {
  const runs: HorizontalRun[] = [];
  const queue = await drainedQueue(env, 'outbox-bench-horizontal', 'classic');
  try {
    for (const count of [1, 2, 3]) {
      const schema = `bench_horizontal_${count}`;
      await freshSchema(env, schema);
      await insertBacklog(env, schema, queue.routingKey, rows, { tenants: 100 });
      await env.pool.query(`vacuum analyze "${schema}".messages`);
      queue.reset();
      const rabbit = pidsMatching('beam.smp');
      const relays: RelayProcess[] = [];
      for (let i = 0; i < count; i++) relays.push(spawnRelay(env, schema));
      // Measure from the moment all relays publish (their PostgreSQL backends exist then).
      await queue.waitFor(Math.min(rows, 2000), 120_000);
      const relayPids = relays.map((r) => r.pid);
      const postgres = pidsMatching('postgres: ');
      const before = {
        machine: machineTicks(),
        relays: cpuSnapshot(relayPids),
        postgres: cpuSnapshot(postgres),
        rabbit: cpuSnapshot(rabbit),
        self: process.cpuUsage(),
      };
      await queue.waitFor(rows, 600_000);
      const machine1 = machineTicks();
      const relayCpu = cpuSince(before.relays);
      const postgresCpu = cpuSince(before.postgres);
      const rabbitCpu = cpuSince(before.rabbit);
      const self = process.cpuUsage(before.self);
      for (const relay of relays) await relay.stop();
      await env.pool.query(`drop schema "${schema}" cascade`);
      // /proc/stat counts ticks of 10 ms summed over both cores.
      const seconds = (machine1.total - before.machine.total) / 100 / 2;
      const run: HorizontalRun = {
        relays: count,
        rate: arrivalRate(queue.arrivals),
        machineBusy:
          (machine1.busy - before.machine.busy) /
          Math.max(1, machine1.total - before.machine.total),
        cpu: {
          relays: relayCpu / seconds / 2,
          postgres: postgresCpu / seconds / 2,
          rabbitmq: rabbitCpu / seconds / 2,
          consumer: (self.user + self.system) / 1e6 / seconds / 2,
        },
      };
      runs.push(run);
      log(
        `  ${count} relay(s): ${Math.round(run.rate)} msg/s, machine ${(100 * run.machineBusy).toFixed(0)}% busy (relays ${(100 * run.cpu.relays).toFixed(0)}%, postgres ${(100 * run.cpu.postgres).toFixed(0)}%, rabbitmq ${(100 * run.cpu.rabbitmq).toFixed(0)}%, bench consumer ${(100 * run.cpu.consumer).toFixed(0)}%)`,
      );
    }
  } finally {
    await queue.close();
  }
  return runs;
}
