/**
 * Big backlogs: the claim's cost and the relay's throughput with 10,000,000
 * pending rows against a small backlog, in the same run.
 */
import { claimTransaction, lockClaimTenants } from '../src/outbox/claim.js';
import {
  claimTenantsVariables,
  claimVariables,
  defaultClaimParams,
} from '../src/outbox/claim-sql.js';
import { createOutboxStore } from '../src/outbox/outbox-store.js';
import {
  arrivalRate,
  type BenchEnv,
  drainedQueue,
  freshSchema,
  insertBacklog,
  percentile,
  spawnRelay,
} from './harness.js';

/** Claim times in ms (server execution, median of several) and relay rates in msg/s. */
export interface BacklogResult {
  largeRows: number;
  claimMsSmall: number;
  claimMsLarge: number;
  rateSmall: number;
  rateLarge: number;
  ratio: number;
  insertSeconds: number;
}

const TENANTS = 100;
const PAYLOAD = 200;

/** Median server-side execution time of the claim (rolled back, so nothing stays leased). */
async function claimMs(env: BenchEnv, schema: string): Promise<number> {
  const store = createOutboxStore(env.pool, schema);
  const { begin, claimTenants, claim } = claimTransaction(schema);
  const client = await env.pool.connect();
  const times: number[] = [];
  const params = defaultClaimParams('00000000-0000-0000-0000-000000000001', {
    requireLiveness: false,
  });
  const executionMs = async (text: string, values: unknown[]) => {
    const { rows } = await client.query({ text: `explain (analyze, format json) ${text}`, values });
    return rows[0]['QUERY PLAN'][0]['Execution Time'] as number;
  };
  try {
    for (let i = 0; i < 7; i++) {
      // The claim's own transaction opening (read committed, no JIT), its
      // tenant walk and locks, then the claim: both statements' server time.
      await client.query(begin);
      const walkMs = await executionMs(
        claimTenants.text,
        claimTenants.values(claimTenantsVariables(params)),
      );
      const locked = await lockClaimTenants(store, client, params);
      const claimMs = await executionMs(claim.text, claim.values(claimVariables(params, locked)));
      await client.query('rollback');
      times.push(walkMs + claimMs);
    }
  } finally {
    client.release();
  }
  return percentile(times, 50);
}

/** The relay's rate over the first `sample` messages of the backlog in `schema`. */
async function relayRate(
  env: BenchEnv,
  schema: string,
  sample: number,
  routingKey: string,
): Promise<number> {
  const queue = await drainedQueue(env, `${routingKey}`, 'classic');
  try {
    const relay = spawnRelay(env, schema);
    await queue.waitFor(sample, 300_000);
    const arrivals = queue.arrivals.slice(0, sample);
    await relay.stop();
    return arrivalRate(arrivals);
  } finally {
    await queue.close();
  }
}

/** Small backlog (sample rows) against a large one (`largeRows`), same payloads and tenants. */
export async function measureBacklog(
  env: BenchEnv,
  options: { largeRows: number; sample: number },
  log: (line: string) => void,
): Promise<BacklogResult> {
  const small = 'bench_backlog_small';
  const large = 'bench_backlog_large';
  const tiny = 'bench_backlog_10k';
  const routingKey = 'outbox-bench-backlog';

  await freshSchema(env, tiny);
  await insertBacklog(env, tiny, routingKey, 10_000, { tenants: TENANTS, payloadBytes: PAYLOAD });
  await env.pool.query(`vacuum analyze "${tiny}".messages`);
  const claimMsSmall = await claimMs(env, tiny);
  await env.pool.query(`drop schema "${tiny}" cascade`);

  await freshSchema(env, small);
  await insertBacklog(env, small, routingKey, options.sample, {
    tenants: TENANTS,
    payloadBytes: PAYLOAD,
  });
  await env.pool.query(`vacuum analyze "${small}".messages`);
  const rateSmall = await relayRate(env, small, options.sample, routingKey);
  await env.pool.query(`drop schema "${small}" cascade`);
  log(
    `  small backlog (${options.sample} rows): claim ${claimMsSmall.toFixed(2)} ms at 10k pending, relay ${Math.round(rateSmall)} msg/s`,
  );

  await freshSchema(env, large);
  const started = performance.now();
  await insertBacklog(env, large, routingKey, options.largeRows, {
    tenants: TENANTS,
    payloadBytes: PAYLOAD,
  });
  await env.pool.query(`vacuum analyze "${large}".messages`);
  const insertSeconds = (performance.now() - started) / 1000;
  const claimMsLarge = await claimMs(env, large);
  const rateLarge = await relayRate(env, large, options.sample, routingKey);
  await env.pool.query(`drop schema "${large}" cascade`);
  log(
    `  large backlog (${options.largeRows} rows, built in ${insertSeconds.toFixed(0)} s): claim ${claimMsLarge.toFixed(2)} ms, relay ${Math.round(rateLarge)} msg/s`,
  );
  return {
    largeRows: options.largeRows,
    claimMsSmall,
    claimMsLarge,
    rateSmall,
    rateLarge,
    ratio: rateLarge / rateSmall,
    insertSeconds,
  };
}
