/**
 * Demo producer: stands in for an application. It enqueues order events for a
 * few tenants at a steady rate, each batch in its own transaction through the
 * public `enqueue` API, and consumes what the relays publish, printing every
 * few seconds how many events went in, how many came out and how long they
 * took from the enqueue to the consumer. docker compose's `producer` service
 * runs it (the Dockerfile's `demo` target); with local services it runs as
 * `npx tsx scripts/producer.ts` once `outbox-relay migrate up` has run and a
 * relay is running.
 *
 * DATABASE_URL, AMQP_URL and OUTBOX_SCHEMA as for the relay. PRODUCER_RATE:
 * events per second in all (default 20). PRODUCER_TENANTS: comma-separated
 * (default acme,globex,initech,umbrella); the first gets the most events, so
 * the per-tenant metrics differ. PRODUCER_SECONDS: stop after this long
 * (default 0: until SIGTERM or SIGINT).
 */
import amqp from 'amqplib';
import pg from 'pg';
import { enqueue, type OutboxMessage, SETTINGS } from '../src/index.js';
import { redactUrl } from '../src/redact-url.js';

const DATABASE_URL = process.env.DATABASE_URL || SETTINGS.databaseUrl.default;
const AMQP_URL = process.env.AMQP_URL || SETTINGS.amqpUrl.default;
const SCHEMA = process.env.OUTBOX_SCHEMA || SETTINGS.schema.default;
const RATE = positiveNumber('PRODUCER_RATE', '20');
const SECONDS = positiveNumber('PRODUCER_SECONDS', '0');
const TENANTS = (process.env.PRODUCER_TENANTS || 'acme,globex,initech,umbrella')
  .split(',')
  .map((tenant) => tenant.trim())
  .filter((tenant) => tenant !== '');
// Names of its own, so that it never competes with `npm run demo` for messages.
const EXCHANGE = 'outbox-producer';
const QUEUE = 'outbox-producer-events';
const TICK_MS = 100;
const REPORT_MS = 5000;

function positiveNumber(name: string, fallback: string): number {
  const value = Number(process.env[name] || fallback);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${name} must be a number of at least 0, got '${process.env[name]}'`);
  }
  return value;
}

/** Tenant i gets weight 1/(i+1): a skewed mix, as real tenants are. */
function pickTenant(): string {
  const weights = TENANTS.map((_, i) => 1 / (i + 1));
  let roll = Math.random() * weights.reduce((sum, w) => sum + w, 0);
  for (const [i, tenant] of TENANTS.entries()) {
    roll -= weights[i] ?? 0;
    if (roll <= 0) return tenant;
  }
  return TENANTS[0] ?? 'acme';
}

/** Counts since the last report, and in all. */
const counts = { enqueued: 0, received: 0, totalEnqueued: 0, totalReceived: 0 };
let latenciesMs: number[] = [];
let orderNo = 0;

/** One transaction, as an application's: its business write would sit next to the enqueue. */
async function enqueueBatch(pool: pg.Pool, size: number): Promise<void> {
  const messages: OutboxMessage[] = Array.from({ length: size }, () => {
    const tenant = pickTenant();
    const order = ++orderNo;
    const type = Math.random() < 0.7 ? 'order.created' : 'order.paid';
    return {
      tenantId: tenant,
      exchange: EXCHANGE,
      routingKey: `${tenant}.${type}`,
      type,
      orderingKey: `order-${order}`,
      payload: {
        orderId: order,
        amount: Math.round(Math.random() * 10_000) / 100,
        enqueuedAt: Date.now(),
      },
    };
  });
  const client = await pool.connect();
  try {
    await client.query('begin');
    await enqueue(client, messages, { schema: SCHEMA });
    await client.query('commit');
    counts.enqueued += size;
    counts.totalEnqueued += size;
  } catch (error) {
    await client.query('rollback').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

function report(): void {
  latenciesMs.sort((a, b) => a - b);
  const at = (q: number) =>
    latenciesMs[Math.min(latenciesMs.length - 1, Math.floor(q * latenciesMs.length))];
  const latency =
    latenciesMs.length > 0 ? `, enqueue→consume p50 ${at(0.5)} ms, max ${at(1)} ms` : '';
  console.log(
    `enqueued ${counts.enqueued}, received ${counts.received} in ${REPORT_MS / 1000} s${latency} (in all: ${counts.totalEnqueued} enqueued, ${counts.totalReceived} received)`,
  );
  counts.enqueued = 0;
  counts.received = 0;
  latenciesMs = [];
}

async function main(): Promise<void> {
  if (TENANTS.length === 0) throw new Error('PRODUCER_TENANTS names no tenant');
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  pool.on('error', () => undefined);
  const connection = await amqp.connect(AMQP_URL, { timeout: 10_000 });
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  // The topology exists before events flow: the relay publishes with `mandatory`.
  await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
  await channel.assertQueue(QUEUE, { durable: true, arguments: { 'x-max-length': 100_000 } });
  await channel.bindQueue(QUEUE, EXCHANGE, '#');
  await channel.consume(
    QUEUE,
    (msg) => {
      if (!msg) return;
      counts.received += 1;
      counts.totalReceived += 1;
      // The AMQP timestamp has whole seconds only: the payload carries milliseconds.
      try {
        const sentAt = Number(
          (JSON.parse(msg.content.toString()) as { enqueuedAt?: unknown }).enqueuedAt,
        );
        if (Number.isFinite(sentAt)) latenciesMs.push(Math.max(0, Date.now() - sentAt));
      } catch {
        // Not one of ours: counted, not timed.
      }
    },
    { noAck: true },
  );
  console.log(
    `producing ${RATE} events/s for ${TENANTS.join(', ')} into ${SCHEMA}.messages (${redactUrl(DATABASE_URL)}), consuming ${QUEUE} (${redactUrl(AMQP_URL)})`,
  );

  let stopping = false;
  const stop = () => {
    stopping = true;
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const reporter = setInterval(report, REPORT_MS);
  const started = Date.now();
  // Fractions carry over, so low rates still produce on average RATE per second.
  let owed = 0;
  try {
    while (!stopping && (SECONDS === 0 || Date.now() - started < SECONDS * 1000)) {
      const tickStart = Date.now();
      owed += (RATE * TICK_MS) / 1000;
      const size = Math.floor(owed);
      owed -= size;
      if (size > 0) await enqueueBatch(pool, Math.min(size, 10_000));
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, TICK_MS - (Date.now() - tickStart))),
      );
    }
    // Give the relays a moment to publish the last events before the totals.
    const drainUntil = Date.now() + 5000;
    while (counts.totalReceived < counts.totalEnqueued && Date.now() < drainUntil && !stopping) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    clearInterval(reporter);
    report();
    await connection.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`producer failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
