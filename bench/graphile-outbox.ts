/**
 * graphile-worker used as an outbox, the alternative users weigh outbox-relay
 * against: the business transaction adds a job (`graphile_worker.add_job`, or
 * `add_jobs` for many) carrying the message, and a task publishes the job's
 * message with confirms over one long-lived broker connection and confirm
 * channel, returning (so completing the job) once the broker has acked it.
 */
import amqp from 'amqplib';
import { Logger, type Runner, run, runMigrations } from 'graphile-worker';
import type pg from 'pg';
import { EXCHANGE, PAYLOAD_BYTES } from './harness.js';

/** The task's name. */
const TASK = 'publish_outbox_message';

/** What a job carries: the message, as an outbox row would. */
interface OutboxJob {
  id: string;
  tenant: string;
  exchange: string;
  routingKey: string;
  type: string;
  body: unknown;
}

/** The graphile-worker settings tuned for this workload (see docs/benchmarks.md). */
export interface GraphileSettings {
  concurrency: number;
  maxPoolSize: number;
  pollInterval: number;
  /** Jobs fetched (and locked) per query; -1 disables the local queue. */
  localQueueSize: number;
  /** ms to batch job completions; -1 completes each job alone. */
  completeJobBatchDelay: number;
  useNodeTime: boolean;
  preparedStatements: boolean;
}

/** The best of the settings tried (bench/graphile-tune.ts). */
export const GRAPHILE_SETTINGS: GraphileSettings = {
  concurrency: 500,
  maxPoolSize: 10,
  pollInterval: 2000,
  localQueueSize: 2000,
  completeJobBatchDelay: 0,
  useNodeTime: true,
  preparedStatements: true,
};

const quiet = new Logger(() => (level, message) => {
  if (String(level) === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
});

/** Installs (or brings up to date) graphile-worker's schema with its own migrations. */
export async function installGraphileWorker(databaseUrl: string): Promise<void> {
  await runMigrations({ connectionString: databaseUrl, logger: quiet });
}

/**
 * Adds `count` jobs, one per message, the same messages as insertBacklog's
 * rows (1 KiB JSON body, `tenants` tenants round-robin). Each chunk of 10,000
 * is one transaction calling `graphile_worker.add_jobs` with the jobs built
 * in the server: the bulk form of the `add_job` a business transaction calls.
 */
export async function insertGraphileBacklog(
  pool: pg.Pool,
  routingKey: string,
  count: number,
  tenants: number,
): Promise<void> {
  const step = 10_000;
  const client = await pool.connect();
  try {
    for (let from = 0; from < count; from += step) {
      const to = Math.min(count, from + step) - 1;
      await client.query('begin');
      await client.query(
        `select count(*) from graphile_worker.add_jobs(array(
           select row($3::text, json_build_object(
                    'id', gen_random_uuid(),
                    'tenant', 'tenant-' || (g % $4),
                    'exchange', $5::text,
                    'routingKey', $6::text,
                    'type', 'bench.event',
                    'body', json_build_object('seq', g, 'tenant', 'tenant-' || (g % $4),
                                              'data', repeat('x', ${Math.max(0, PAYLOAD_BYTES - 60)}))),
                  null, null, null, null, null, null)::graphile_worker.job_spec
           from generate_series($1::int, $2::int) g))`,
        [from, to, TASK, tenants, EXCHANGE, routingKey],
      );
      await client.query('commit');
    }
  } finally {
    client.release();
  }
}

/** Runs graphile-worker with the publishing task until `stop()`. */
export async function runGraphileOutbox(
  databaseUrl: string,
  amqpUrl: string,
  settings: GraphileSettings,
): Promise<{ stop(): Promise<void> }> {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createConfirmChannel();
  const publish = (job: OutboxJob, timestamp: number) =>
    new Promise<void>((resolve, reject) => {
      channel.publish(
        job.exchange,
        job.routingKey,
        Buffer.from(JSON.stringify(job.body)),
        {
          persistent: true,
          mandatory: true,
          messageId: job.id,
          contentType: 'application/json',
          type: job.type,
          timestamp,
          headers: { 'x-tenant-id': job.tenant },
        },
        (error: unknown) => (error ? reject(error) : resolve()),
      );
    });
  const runner: Runner = await run({
    connectionString: databaseUrl,
    concurrency: settings.concurrency,
    maxPoolSize: settings.maxPoolSize,
    pollInterval: settings.pollInterval,
    useNodeTime: settings.useNodeTime,
    noPreparedStatements: !settings.preparedStatements,
    noHandleSignals: true,
    logger: quiet,
    taskList: {
      [TASK]: async (payload, helpers) => {
        await publish(payload as OutboxJob, Math.floor(helpers.job.created_at.getTime() / 1000));
      },
    },
    preset: {
      worker: {
        ...(settings.localQueueSize > 0 ? { localQueue: { size: settings.localQueueSize } } : {}),
        completeJobBatchDelay: settings.completeJobBatchDelay,
        failJobBatchDelay: settings.completeJobBatchDelay,
      },
    },
  });
  return {
    async stop() {
      await runner.stop();
      await channel.close().catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
