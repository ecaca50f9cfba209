/**
 * End-to-end demo: the application enqueues events in its own transactions,
 * the relay (a separate process, as in production) publishes them to
 * RabbitMQ, and a consumer prints what arrives.
 *
 * Run with `npm run demo` (which builds and migrates first). Uses DATABASE_URL
 * and AMQP_URL, with the same defaults as the relay.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import pg from 'pg';
import { redactUrl } from '../src/config.js';
import { enqueue, type OutboxMessage, SETTINGS } from '../src/index.js';

const DATABASE_URL = process.env.DATABASE_URL || SETTINGS.databaseUrl.default;
const AMQP_URL = process.env.AMQP_URL || SETTINGS.amqpUrl.default;
const EXCHANGE = 'outbox-demo';
const QUEUE = 'outbox-demo-events';
const TENANTS = ['acme', 'globex', 'initech'] as const;
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

const enqueued = new Map<string, string>(); // message id -> tenant
const received = new Map<string, string>();
let orderNo = 1000;

/** Enqueues one wave of events in a single transaction, as an application would. */
async function enqueueWave(pool: pg.Pool, types: string[]): Promise<void> {
  const messages: OutboxMessage[] = TENANTS.flatMap((tenant) =>
    types.map((type) => ({
      tenantId: tenant,
      exchange: EXCHANGE,
      routingKey: `${tenant}.${type}`,
      type,
      payload: {
        orderId: `${tenant}-${++orderNo}`,
        amount: Math.round(Math.random() * 10_000) / 100,
      },
    })),
  );
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // The business write would go here, in the same transaction.
    const rows = await enqueue(client, messages);
    await client.query('COMMIT');
    for (const [i, row] of rows.entries())
      enqueued.set(row.messageId, messages[i]?.tenantId ?? '?');
    console.log(`enqueued ${rows.length} messages (${types.join(', ')} for ${TENANTS.join(', ')})`);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Polls until every enqueued id has arrived; fails fast if the relay dies. */
async function waitForAll(relay: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ([...enqueued.keys()].some((id) => !received.has(id))) {
    if (relay.exitCode !== null || relay.signalCode !== null) {
      throw new Error(
        `the relay exited early (code ${relay.exitCode ?? relay.signalCode}); see its output above`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs / 1000}s: ${received.size} of ${enqueued.size} messages arrived`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function connectOrExplain<T>(
  what: string,
  connect: () => Promise<T>,
  hint: string,
): Promise<T> {
  try {
    return await connect();
  } catch (error) {
    const reason = error instanceof Error ? error.message || error.constructor.name : String(error);
    throw new Error(`${what} is not reachable (${reason}).\n  ${hint}`);
  }
}

async function main(): Promise<void> {
  const pool = new pg.Pool({
    connectionString: DATABASE_URL,
    max: 2,
    connectionTimeoutMillis: 5000,
  });
  let connection: ChannelModel | undefined;
  let channel: Channel | undefined;
  let relay: ChildProcess | undefined;
  try {
    await connectOrExplain(
      `PostgreSQL at ${redactUrl(DATABASE_URL)}`,
      () => pool.query('select 1'),
      'Start it (e.g. `pg_ctlcluster <version> main start`) or set DATABASE_URL.',
    );
    connection = await connectOrExplain(
      `RabbitMQ at ${redactUrl(AMQP_URL)}`,
      () => amqp.connect(AMQP_URL, { timeout: 5000 }),
      'Start it (e.g. `rabbitmq-server -detached`) or set AMQP_URL.',
    );
    channel = await connection.createChannel();

    // The topology must exist before the relay publishes: it publishes with
    // `mandatory`, so an unroutable message would count as a failed attempt.
    await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
    await channel.assertQueue(QUEUE, { durable: true });
    await channel.bindQueue(QUEUE, EXCHANGE, '#');
    await channel.consume(
      QUEUE,
      (msg) => {
        if (!msg) return;
        const id = String(msg.properties.messageId);
        const tenant = String(msg.properties.headers?.['x-tenant-id'] ?? '?');
        // Leftovers of an interrupted earlier run may still be pending in the outbox.
        const note = enqueued.has(id) ? '' : '  (not from this run)';
        if (enqueued.has(id)) received.set(id, tenant);
        const line = [
          tenant.padEnd(8),
          String(msg.properties.type).padEnd(14),
          msg.fields.routingKey.padEnd(22),
          id,
        ];
        console.log(`  <- ${line.join(' ')} ${msg.content.toString()}${note}`);
      },
      { noAck: true },
    );

    await enqueueWave(pool, ['order.created', 'order.paid']);

    // The relay runs as its own process, exactly as it would be deployed.
    console.log('starting the relay: node dist/cli/main.js run');
    const child = spawn(process.execPath, [CLI, 'run'], {
      env: { ...process.env, DATABASE_URL, AMQP_URL, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    relay = child;
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    await waitForAll(relay);
    console.log(`all ${enqueued.size} messages arrived`);

    // A second wave while the relay keeps running: it notices new rows by itself.
    await enqueueWave(pool, ['order.shipped']);
    await waitForAll(relay);
    console.log(`all ${enqueued.size} messages arrived`);

    console.log('stopping the relay with SIGTERM');
    relay.kill('SIGTERM');
    const timeout = new Promise<'timeout'>((resolve) =>
      setTimeout(resolve, 20_000, 'timeout').unref(),
    );
    const code = await Promise.race([exited, timeout]);
    if (code !== 0)
      throw new Error(`the relay did not exit cleanly after SIGTERM (exit code: ${code})`);
    console.log('relay exited with code 0');

    console.log('\nsummary        enqueued  received');
    for (const tenant of TENANTS) {
      const count = (m: Map<string, string>) => [...m.values()].filter((t) => t === tenant).length;
      console.log(
        `  ${tenant.padEnd(12)} ${String(count(enqueued)).padStart(8)}  ${String(count(received)).padStart(8)}`,
      );
    }
    console.log(
      `  ${'total'.padEnd(12)} ${String(enqueued.size).padStart(8)}  ${String(received.size).padStart(8)}`,
    );
  } finally {
    // Never leave a relay behind, even when the demo failed half-way.
    if (relay && relay.exitCode === null && relay.signalCode === null) relay.kill('SIGKILL');
    await channel?.deleteQueue(QUEUE).catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
