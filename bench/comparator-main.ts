/**
 * Entry of a comparator's own process (spawned by comparator-process.ts), so
 * that its CPU is told apart from the consumer's and the servers': raw
 * amqplib publishing, the cheapest relay draining the outbox, or
 * graphile-worker running the outbox task. Its job comes as JSON in
 * BENCH_COMPARATOR. It exits when done, or on SIGTERM for graphile-worker,
 * which never runs out of work by itself.
 */
import amqp from 'amqplib';
import { cheapestDrain } from './cheapest-relay.js';
import type { ComparatorJob } from './comparator-process.js';
import { runGraphileOutbox } from './graphile-outbox.js';
import { rawPublish } from './raw-publisher.js';

const job = JSON.parse(process.env.BENCH_COMPARATOR ?? '{}') as ComparatorJob;

async function main(): Promise<void> {
  switch (job.kind) {
    case 'raw': {
      const connection = await amqp.connect(job.amqpUrl);
      await rawPublish(connection, job.routingKey, job.messages, {
        channels: job.channels,
        window: 500,
        tenants: job.tenants,
      });
      await connection.close();
      return;
    }
    case 'ceiling':
      await cheapestDrain({
        databaseUrl: job.databaseUrl,
        amqpUrl: job.amqpUrl,
        schema: job.schema,
        workers: job.workers,
        window: 500,
        batch: 1000,
      });
      return;
    case 'graphile': {
      const worker = await runGraphileOutbox(job.databaseUrl, job.amqpUrl, job.settings);
      await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
      await worker.stop();
      return;
    }
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench comparator ${job.kind}: ${String(error)}\n`);
    process.exit(1);
  },
);
