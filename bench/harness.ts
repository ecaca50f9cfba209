/**
 * Shared machinery of the benchmark: a database of its own, a queue of a
 * given type with a consumer draining it, server-side backlog generation, the
 * relay spawned as ops run it, and process resource sampling.
 */
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import pg from 'pg';
import { startProcess } from '../scripts/process-runner.js';
import { loadConfig } from '../src/config.js';
import { silentLogger } from '../src/log/logger.js';
import { migrateUp } from '../src/migrator/migrator.js';
import type { OutgoingMessage } from '../src/relay/publisher.js';
import { openRelayRuntime, type RelayRuntime } from '../src/runtime/relay-runtime.js';

/** Where the benchmark runs. */
export interface BenchEnv {
  adminUrl: string;
  databaseUrl: string;
  amqpUrl: string;
  pool: pg.Pool;
  amqp: ChannelModel;
}

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
export const EXCHANGE = 'outbox-bench';
export const PAYLOAD_BYTES = 1024;

/** Creates (afresh) the database `outbox_bench` and connects to it and the broker. */
export async function openBenchEnv(adminUrl: string, amqpUrl: string): Promise<BenchEnv> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query('drop database if exists outbox_bench with (force)');
  await admin.query('create database outbox_bench');
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = '/outbox_bench';
  const databaseUrl = url.toString();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 40 });
  pool.on('error', () => undefined);
  const connection = await amqp.connect(amqpUrl);
  connection.on('error', () => undefined);
  return { adminUrl, databaseUrl, amqpUrl, pool, amqp: connection };
}

/** Drops the bench database and closes connections. */
export async function closeBenchEnv(env: BenchEnv): Promise<void> {
  await env.pool.end();
  await env.amqp.close().catch(() => undefined);
  const admin = new pg.Client({ connectionString: env.adminUrl });
  await admin.connect();
  await admin.query('drop database if exists outbox_bench with (force)');
  await admin.end();
}

/** A fresh, migrated outbox schema. */
export async function freshSchema(env: BenchEnv, schema: string): Promise<void> {
  await env.pool.query(`drop schema if exists "${schema}" cascade`);
  await migrateUp(env.pool, schema);
}

/** A durable queue of one type bound to the durable bench exchange, and a consumer counting arrivals. */
export interface DrainedQueue {
  name: string;
  routingKey: string;
  /** Arrival times (ms, performance.now()) in order. */
  arrivals: number[];
  reset(): void;
  /** Resolves when `count` messages have arrived since the last reset. */
  waitFor(count: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Declares `name` as a `type` queue, binds it, and drains it with a no-ack consumer (`onMessage` sees each message and its arrival time). */
export async function drainedQueue(
  env: BenchEnv,
  name: string,
  type: 'classic' | 'quorum',
  onMessage?: (message: ConsumeMessage, at: number) => void,
): Promise<DrainedQueue> {
  const channel: Channel = await env.amqp.createChannel();
  channel.on('error', () => undefined);
  await channel.assertExchange(EXCHANGE, 'direct', { durable: true });
  await channel.deleteQueue(name).catch(() => undefined);
  const setup = await env.amqp.createChannel();
  setup.on('error', () => undefined);
  await setup.assertQueue(name, { durable: true, arguments: { 'x-queue-type': type } });
  await setup.bindQueue(name, EXCHANGE, name);
  await setup.close();
  const queue: DrainedQueue = {
    name,
    routingKey: name,
    arrivals: [],
    reset() {
      queue.arrivals.length = 0;
    },
    async waitFor(count, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (queue.arrivals.length < count) {
        if (performance.now() > deadline) {
          throw new Error(
            `${name}: only ${queue.arrivals.length} of ${count} messages arrived in ${timeoutMs} ms`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    async close() {
      await channel.deleteQueue(name).catch(() => undefined);
      await channel.close().catch(() => undefined);
    },
  };
  await channel.prefetch(2000);
  await channel.consume(
    name,
    (message) => {
      if (!message) return;
      const at = performance.now();
      queue.arrivals.push(at);
      onMessage?.(message, at);
    },
    { noAck: true },
  );
  return queue;
}

/** A 1 KiB JSON payload, as SQL building it server-side for row `g`. */
function payloadSql(bytes: number): string {
  // {"seq":g,"tenant":"…","data":"xxx…"} padded to about `bytes` bytes.
  return `convert_to(json_build_object('seq', g, 'tenant', 'tenant-' || (g % $2), 'data', repeat('x', ${Math.max(0, bytes - 60)}))::text, 'UTF8')`;
}

/**
 * Inserts `count` pending rows for `tenants` tenants (round-robin) in one
 * statement per million, generated in the server. `tenantOf` overrides the
 * tenant expression (SQL over `g`).
 */
export async function insertBacklog(
  env: BenchEnv,
  schema: string,
  routingKey: string,
  count: number,
  options: { tenants: number; payloadBytes?: number; tenantSql?: string; startAt?: number },
): Promise<void> {
  const step = 1_000_000;
  const start = options.startAt ?? 0;
  for (let from = start; from < start + count; from += step) {
    const to = Math.min(start + count, from + step) - 1;
    await env.pool.query(
      `insert into "${schema}".messages (tenant_id, exchange, routing_key, message_type, payload)
       select ${options.tenantSql ?? `'tenant-' || (g % $2)`}, $3, $4, 'bench.event', ${payloadSql(options.payloadBytes ?? PAYLOAD_BYTES)}
       from generate_series($1::int, $5::int) g`,
      [from, options.tenants, EXCHANGE, routingKey, to],
    );
  }
}

/** Extra node arguments for every spawned relay (e.g. --cpu-prof); set by bench.ts. */
export let relayNodeArgs: string[] = [];

/** Sets {@link relayNodeArgs}. */
export function setRelayNodeArgs(args: string[]): void {
  relayNodeArgs = args;
}

/** A relay process started as ops would: `outbox-relay run`. */
export interface RelayProcess {
  child: ChildProcess;
  pid: number;
  /** Resolves with the exit code (null after a signal) once the process has ended. */
  exited: Promise<number | null>;
  /** Sends SIGTERM unless it has ended, and waits for it to end (no SIGKILL: a hang shows). */
  stop(): Promise<number | null>;
}

/** Spawns `outbox-relay run` against the bench database. */
export function spawnRelay(
  env: BenchEnv,
  schema: string,
  extraEnv: Record<string, string> = {},
  nodeArgs: string[] = relayNodeArgs,
): RelayProcess {
  return benchProcess(process.execPath, [...nodeArgs, CLI, 'run'], {
    PATH: process.env.PATH,
    DATABASE_URL: env.databaseUrl,
    AMQP_URL: env.amqpUrl,
    OUTBOX_SCHEMA: schema,
    LOG_LEVEL: 'error',
    ...extraEnv,
  });
}

/**
 * Starts a bench process with the shared runner (scripts/process-runner.ts):
 * its stdout dropped, its stderr passed through; stop sends SIGTERM unless it
 * has ended.
 */
export function benchProcess(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): RelayProcess {
  const run = startProcess(command, args, { env, stdout: 'ignore', stderr: 'inherit' });
  return { child: run.child, pid: run.pid, exited: run.exited, stop: () => run.stop() };
}

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process and its threads have used, from /proc. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/** Pids of processes whose command line contains `needle` (e.g. postgres, beam.smp). */
export function pidsMatching(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSafe('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Busy and total CPU ticks of the whole machine, from /proc/stat (all cores summed). */
export function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Machine CPU time (both cores) spent per message between two tick readings, in µs. */
export function cpuMicrosPerMessage(
  before: { busy: number },
  after: { busy: number },
  messages: number,
): number {
  // /proc/stat ticks are 10 ms.
  return ((after.busy - before.busy) * 10_000) / messages;
}

/**
 * Drives `clients` at `rate` calls per second in total, evenly spread: client
 * w fires at start + w·(interval / clients) + k·interval, never faster when
 * a call runs late. Stops when `done()` says so.
 */
export async function pacedWriters<C>(
  clients: readonly C[],
  rate: number,
  done: () => boolean,
  fire: (client: C, writer: number, k: number) => Promise<void>,
): Promise<void> {
  const interval = (1000 * clients.length) / rate;
  const start = performance.now() + 100;
  await Promise.all(
    clients.map(async (client, w) => {
      for (let k = 0; ; k++) {
        const due = start + (w * interval) / clients.length + k * interval;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (done()) return;
        await fire(client, w, k);
      }
    }),
  );
}

/** Waits (up to 30 s) until every committed message id has an ack time; fails if one never does. */
export async function waitForAcks(
  committedAt: ReadonlyMap<string, number>,
  ackedAt: ReadonlyMap<string, number>,
): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (ackedAt.size < committedAt.size) {
    if (performance.now() > deadline) {
      throw new Error(
        `only ${ackedAt.size} of ${committedAt.size} committed events were acked in 30 s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Commit → ack time (ms) of each committed event, from `(id, committedAt)` entries. */
export function ackLatencies(
  committed: Iterable<readonly [string, number]>,
  ackedAt: ReadonlyMap<string, number>,
): number[] {
  return [...committed].map(([id, at]) => Math.max(0, (ackedAt.get(id) as number) - at));
}

/** The `p`th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Messages per second over the arrivals window (first to last arrival). */
export function arrivalRate(arrivals: readonly number[]): number {
  if (arrivals.length < 2) return 0;
  const first = arrivals[0] as number;
  const last = arrivals[arrivals.length - 1] as number;
  return ((arrivals.length - 1) * 1000) / (last - first);
}

/** `count` connected pg clients on the bench database (writers). */
export async function connectClients(env: BenchEnv, count: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = [];
  for (let i = 0; i < count; i++) {
    const client = new pg.Client({ connectionString: env.databaseUrl });
    client.on('error', () => undefined);
    await client.connect();
    clients.push(client);
  }
  return clients;
}

/**
 * The relay in this process (the runtime `outbox-relay run` uses), with a
 * hook on every broker ack, so latencies are measured on one clock.
 */
export function inProcessRelay(
  env: BenchEnv,
  schema: string,
  onAck: (message: OutgoingMessage) => void,
): Promise<RelayRuntime> {
  const config = loadConfig({
    DATABASE_URL: env.databaseUrl,
    AMQP_URL: env.amqpUrl,
    OUTBOX_SCHEMA: schema,
  });
  return openRelayRuntime(config, {
    logger: silentLogger,
    onSettled: (message, result) => {
      if (result.ok) onAck(message);
    },
  });
}

/**
 * CPU time of a changing set of processes over a window, such as a relay and
 * its PostgreSQL backends (a pool opens and closes connections meanwhile).
 * `sample()` reads /proc for the pids `pids()` names now; a pid first seen
 * after the window opened was born in it and counts from zero. A process that
 * ends between two samples loses at most one sample interval of its CPU.
 */
export class CpuTracker {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private started = 0;
  private ended = 0;

  constructor(private readonly pids: () => Promise<readonly number[]>) {}

  /** Opens the window: what the processes alive now used so far is not counted. */
  async start(): Promise<void> {
    this.started = performance.now();
    for (const pid of await this.pids()) {
      const seconds = cpuSeconds(pid);
      if (seconds !== undefined) {
        this.first.set(pid, seconds);
        this.last.set(pid, seconds);
      }
    }
  }

  /** Reads the CPU of every pid alive now. */
  async sample(): Promise<void> {
    for (const pid of await this.pids()) {
      const seconds = cpuSeconds(pid);
      if (seconds === undefined) continue;
      if (!this.first.has(pid)) this.first.set(pid, 0);
      this.last.set(pid, seconds);
    }
    this.ended = performance.now();
  }

  /** CPU seconds used in the window, and the window's length in seconds. */
  used(): { cpuSeconds: number; wallSeconds: number; processes: number } {
    let total = 0;
    for (const [pid, start] of this.first)
      total += Math.max(0, (this.last.get(pid) ?? start) - start);
    return {
      cpuSeconds: total,
      wallSeconds: (this.ended - this.started) / 1000,
      processes: this.first.size,
    };
  }
}

/** PostgreSQL backends of the relays on the bench database (pool, liveness lock, LISTEN). */
export async function relayBackendPids(env: BenchEnv): Promise<number[]> {
  const { rows } = await env.pool.query<{ pid: number }>(
    `select pid from pg_stat_activity
     where datname = current_database() and application_name like 'outbox-relay%'`,
  );
  return rows.map((row) => row.pid);
}

/** Resolves once `count` relays of the bench database hold an advisory lock (their liveness lock). */
export async function relaysRunning(env: BenchEnv, count: number): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const { rows } = await env.pool.query<{ n: number }>(
      `select count(distinct a.application_name)::int as n
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
       where l.locktype = 'advisory' and l.granted and a.datname = current_database()
         and a.application_name like 'outbox-relay %'`,
    );
    if ((rows[0]?.n ?? 0) >= count) return;
    if (performance.now() > deadline) throw new Error(`${count} relays did not start in 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
