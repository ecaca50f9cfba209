/**
 * Failover, timed: a relay that holds every tenant is SIGKILLed, and the
 * clock runs from its exit until one new event of each of its tenants has
 * reached a consumer. Either a relay is started at once after the kill (a
 * restart by the orchestrator, process start-up included), or a standby
 * relay was already running. The tenants' leases still run for the default
 * 60 s OUTBOX_LEASE; what frees them is the killed relay's liveness lock,
 * which PostgreSQL drops when the killed process's session ends.
 */
import {
  type BenchEnv,
  drainedQueue,
  freshSchema,
  insertBacklog,
  type RelayProcess,
  relaysRunning,
  spawnRelay,
} from './harness.js';

/** Milliseconds from the kill to the last tenant's first new event, per run. */
export interface FailoverResult {
  tenants: number;
  restart: number[];
  standby: number[];
}

const TENANTS = 12;
const ROWS_PER_TENANT = 200;
const SCHEMA = 'bench_failover';

/** Resolves once every tenant has a live lease (after the first relay's drain). */
async function allTenantsLeased(env: BenchEnv): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const { rows } = await env.pool.query<{ n: number }>(
      `select count(*)::int as n from "${SCHEMA}".tenant_leases where leased_until > now()`,
    );
    if ((rows[0]?.n ?? 0) >= TENANTS) return;
    if (performance.now() > deadline) throw new Error('the tenants were not leased in 30 s');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** `runs` kills with a restart at once, then `runs` kills with a standby relay running. */
export async function measureFailover(
  env: BenchEnv,
  runs: number,
  log: (line: string) => void,
): Promise<FailoverResult> {
  const backlog = await drainedQueue(env, 'outbox-bench-failover', 'classic');
  const markers = await drainedQueue(env, 'outbox-bench-failover-markers', 'classic');
  const result: FailoverResult = { tenants: TENANTS, restart: [], standby: [] };
  const relays: RelayProcess[] = [];
  try {
    for (const mode of ['restart', 'standby'] as const) {
      for (let run = 0; run < runs; run++) {
        await freshSchema(env, SCHEMA);
        await insertBacklog(env, SCHEMA, backlog.routingKey, TENANTS * ROWS_PER_TENANT, {
          tenants: TENANTS,
        });
        backlog.reset();
        markers.reset();
        const killed = spawnRelay(env, SCHEMA);
        relays.push(killed);
        await backlog.waitFor(TENANTS * ROWS_PER_TENANT, 60_000);
        // It holds every tenant now, until its leases end or its lock is freed.
        await allTenantsLeased(env);
        if (mode === 'standby') {
          relays.push(spawnRelay(env, SCHEMA));
          await relaysRunning(env, 2);
        }
        killed.child.kill('SIGKILL');
        await killed.exited;
        const killedAt = performance.now();
        if (mode === 'restart') relays.push(spawnRelay(env, SCHEMA));
        // One new event per tenant; the last one to arrive ends the failover.
        await insertBacklog(env, SCHEMA, markers.routingKey, TENANTS, {
          tenants: TENANTS,
          startAt: TENANTS * ROWS_PER_TENANT,
        });
        await markers.waitFor(TENANTS, 60_000);
        const ms = (markers.arrivals[TENANTS - 1] as number) - killedAt;
        result[mode].push(ms);
        log(
          `  ${mode} run ${run + 1}: the killed relay's ${TENANTS} tenants published again after ${ms.toFixed(0)} ms`,
        );
        for (const relay of relays.splice(0)) await relay.stop();
      }
    }
  } finally {
    for (const relay of relays) await relay.stop();
    await backlog.close();
    await markers.close();
    await env.pool.query(`drop schema if exists "${SCHEMA}" cascade`);
  }
  return result;
}
