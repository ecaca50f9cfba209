/**
 * Claim capacity: how many claims (and rows) per second 1, 2, 4 and 8 relays
 * get through on one outbox, when nothing but the claim can be the bound. The
 * relays run in this process (the real Relay, its claim with the payloads,
 * and the delete) against a publisher that acks at once, so neither the broker nor
 * the publish path limits them; the backlog is deep enough to last the window.
 *
 * Tenants are spread over the relays before the window opens (each relay
 * holds the leases of every N-th tenant), as in a fleet that has run for a
 * while: a tenant stays with the relay that holds its lease, so what is
 * measured is whether claims of different relays, for different tenants, wait
 * for each other. Time waiting for a lock is sampled from pg_stat_activity
 * (backends waiting on an advisory lock) every few milliseconds.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { silentLogger } from '../src/log/logger.js';
import { createOutboxStore } from '../src/outbox/outbox-store.js';
import type { Publisher } from '../src/relay/publisher.js';
import { Relay } from '../src/relay/relay.js';
import { allowAllTenants } from '../src/tenants/allow-all-gate.js';
import {
  type BenchEnv,
  CpuTracker,
  freshSchema,
  insertBacklog,
  machineTicks,
  relayBackendPids,
  relaysRunning,
} from './harness.js';

const SCHEMA = 'bench_capacity';
const TENANTS = 128;
const WARMUP_MS = 500;
const SAMPLE_MS = 5;

/** One point: `relays` relays claiming for `seconds`. */
export interface CapacityPoint {
  relays: number;
  claimsPerSecond: number;
  rowsPerSecond: number;
  /** Mean rows per claim that returned any. */
  rowsPerClaim: number;
  /** Mean wall time of one claim (begin to commit), ms. */
  claimMs: number;
  /** Backends waiting on an advisory lock, on average over the window. */
  meanWaiting: number;
  /** Share of all claim time spent waiting on an advisory lock. */
  waitShare: number;
  /** Both cores' busy share over the window. */
  machineBusy: number;
  /** This process (the relays) and the relays' PostgreSQL backends, in cores. */
  relayCores: number;
  postgresCores: number;
}

/** A publisher that takes every message at once: the broker is not the bound. */
function ackingPublisher(): Publisher {
  return {
    publish: async (messages) => messages.map(() => ({ ok: true as const })),
    isReady: () => true,
    close: async () => undefined,
  };
}

/** Claims, rows and claim time counted by a relay's observer. */
interface Counts {
  claims: number;
  rows: number;
  claimMs: number;
}

async function measurePoint(
  env: BenchEnv,
  relays: number,
  options: { rows: number; seconds: number },
): Promise<CapacityPoint> {
  await freshSchema(env, SCHEMA);
  const config = loadConfig({
    DATABASE_URL: env.databaseUrl,
    AMQP_URL: env.amqpUrl,
    OUTBOX_SCHEMA: SCHEMA,
  });
  const counts: Counts = { claims: 0, rows: 0, claimMs: 0 };
  const started: { relay: Relay; pool: pg.Pool; id: string }[] = [];
  for (let i = 0; i < relays; i++) {
    const id = randomUUID();
    const pool = createPool({
      url: env.databaseUrl,
      max: config.batchesInFlight + 7,
      connectTimeoutMs: config.connectTimeoutMs,
      applicationName: `outbox-relay ${id}`,
      onError: () => undefined,
    });
    const relay = new Relay(
      {
        relayId: id,
        batchSize: config.batchSize,
        batchesInFlight: config.batchesInFlight,
        tenantsPerClaim: config.tenantsPerClaim,
        leaseMs: config.leaseMs,
        retentionMs: 0,
        maxAttempts: config.maxAttempts,
        pollIntervalMs: 20,
        shutdownTimeoutMs: 5000,
      },
      {
        store: createOutboxStore(pool, SCHEMA),
        publisher: ackingPublisher(),
        gate: allowAllTenants(),
        logger: silentLogger,
        observer: {
          claimed: (rows, ms) => {
            counts.claims++;
            counts.rows += rows;
            counts.claimMs += ms;
          },
          batchSettled: () => undefined,
        },
      },
    );
    relay.start();
    started.push({ relay, pool, id });
  }
  try {
    // Every relay holds its liveness lock (taken before its first, empty,
    // claim); then each gets every N-th tenant's lease, and the backlog lands.
    await relaysRunning(env, relays);
    await env.pool.query(
      `insert into "${SCHEMA}".tenant_leases (tenant_id, relay_id, leased_until)
       select 'tenant-' || g, ($1::uuid[])[1 + g % $2], now() + interval '1 hour'
       from generate_series(0, $3 - 1) g`,
      [started.map((s) => s.id), relays, TENANTS],
    );
    await insertBacklog(env, SCHEMA, 'outbox-bench-capacity', options.rows, {
      tenants: TENANTS,
      payloadBytes: 100,
    });
    await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
    const from = { ...counts };
    const backends = new CpuTracker(() => relayBackendPids(env));
    await backends.start();
    const cpu = process.cpuUsage();
    const ticks = machineTicks();
    const t0 = performance.now();
    let samples = 0;
    let waiting = 0;
    while (performance.now() - t0 < options.seconds * 1000) {
      const { rows } = await env.pool.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`,
      );
      samples++;
      waiting += rows[0]?.n ?? 0;
      if (samples % 20 === 0) await backends.sample();
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
    const wall = (performance.now() - t0) / 1000;
    const after = machineTicks();
    const used = process.cpuUsage(cpu);
    await backends.sample();
    const claims = counts.claims - from.claims;
    const rows = counts.rows - from.rows;
    const claimMs = counts.claimMs - from.claimMs;
    const { rows: left } = await env.pool.query<{ n: number }>(
      `select count(*)::int as n from "${SCHEMA}".messages`,
    );
    if ((left[0]?.n ?? 0) === 0) throw new Error('the backlog ran out inside the window');
    const meanWaiting = waiting / Math.max(1, samples);
    return {
      relays,
      claimsPerSecond: claims / wall,
      rowsPerSecond: rows / wall,
      rowsPerClaim: rows / Math.max(1, claims),
      claimMs: claimMs / Math.max(1, claims),
      meanWaiting,
      // Waiting backends × window, against the claims' summed wall time.
      waitShare: Math.min(1, (meanWaiting * wall * 1000) / Math.max(1, claimMs)),
      machineBusy: (after.busy - ticks.busy) / Math.max(1, after.total - ticks.total),
      relayCores: (used.user + used.system) / 1e6 / wall,
      postgresCores: backends.used().cpuSeconds / wall,
    };
  } finally {
    // Stopped together, and whatever claim still waits is ended: the figures
    // are taken, and a fleet's last claims queued behind one another (the
    // schema-wide lock) could otherwise hold the teardown for minutes.
    await Promise.all(started.map(({ relay }) => relay.stop()));
    await env.pool.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where datname = current_database() and application_name like 'outbox-relay %'`,
    );
    await Promise.all(started.map(({ pool }) => pool.end().catch(() => undefined)));
  }
}

/** 1, 2, 4 and 8 relays, each point on a fresh backlog of `rows` rows of 128 tenants. */
export async function measureClaimCapacity(
  env: BenchEnv,
  options: { rows: number; seconds: number },
  log: (line: string) => void,
): Promise<CapacityPoint[]> {
  const points: CapacityPoint[] = [];
  for (const relays of [1, 2, 4, 8]) {
    const point = await measurePoint(env, relays, options);
    log(
      `  ${relays} relay(s): ${point.claimsPerSecond.toFixed(0)} claims/s, ${point.rowsPerSecond.toFixed(0)} rows/s, ${point.rowsPerClaim.toFixed(0)} rows/claim, claim ${point.claimMs.toFixed(1)} ms, waiting on a lock ${(100 * point.waitShare).toFixed(0)}% of claim time (${point.meanWaiting.toFixed(2)} backends), machine ${(100 * point.machineBusy).toFixed(0)}% busy (relays ${point.relayCores.toFixed(2)} cores, their postgres backends ${point.postgresCores.toFixed(2)})`,
    );
    points.push(point);
  }
  return points;
}
