/**
 * The cheapest relay there can be, as the ceiling for any relay on this
 * machine: per batch, one statement claims and deletes the 1,000 oldest
 * pending rows (`for update skip locked`), every row is published on a
 * confirm channel with at most 500 unconfirmed, and the transaction commits
 * once all are acked. No leases, no fairness across tenants, no kill-switch
 * gate, no per-key order across workers: only what every relay must do.
 *
 * It reads the same outbox table the relay drains and sends the same message
 * properties and headers, so PostgreSQL and the broker do the same work.
 */
import amqp, { type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { BATCHED_SOCKET_OPTIONS, batchSocketWrites } from '../src/broker/batched-writes.js';

/** An outbox row as the comparators read it (the columns a message needs). */
export interface OutboxRow {
  message_id: string;
  tenant_id: string;
  exchange: string;
  routing_key: string;
  message_type: string | null;
  payload: Buffer;
  content_type: string;
  headers: Record<string, unknown>;
  created_s: number;
}

/** Where and how the ceiling drains. */
export interface CheapestRelayOptions {
  databaseUrl: string;
  amqpUrl: string;
  schema: string;
  /** Concurrent workers, each with its own database connection, broker connection and confirm channel. */
  workers: number;
  /** Unconfirmed messages per worker. */
  window: number;
  batch: number;
}

/** Drains the outbox until a claim finds nothing; resolves with how many rows it published. */
export async function cheapestDrain(options: CheapestRelayOptions): Promise<number> {
  const counts = await Promise.all(
    Array.from({ length: options.workers }, () => cheapestWorker(options)),
  );
  return counts.reduce((a, b) => a + b, 0);
}

async function cheapestWorker(options: CheapestRelayOptions): Promise<number> {
  const schema = `"${options.schema}"`;
  // Payload as bytea (pg parses it into a Buffer); created_at as whole
  // seconds, the only precision the AMQP timestamp has.
  const claim = {
    name: 'ceiling-claim',
    text: `with c as (
             select id from ${schema}.messages
             where published_at is null and dead_at is null
             order by id limit ${options.batch}
             for update skip locked)
           delete from ${schema}.messages m using c where m.id = c.id
           returning m.message_id, m.tenant_id, m.exchange, m.routing_key, m.message_type,
                     m.payload, m.content_type, m.headers,
                     floor(extract(epoch from m.created_at))::int as created_s`,
  };
  const client = new pg.Client({
    connectionString: options.databaseUrl,
    application_name: 'bench-ceiling',
  });
  await client.connect();
  // The relay batches its socket writes (src/broker/batched-writes.ts), with
  // a larger socket buffer; any relay could, so the ceiling does too.
  const connection = await amqp.connect(options.amqpUrl, {
    ...BATCHED_SOCKET_OPTIONS,
    clientProperties: { connection_name: 'bench-ceiling' },
  });
  batchSocketWrites(connection);
  const channel = await connection.createConfirmChannel();
  let published = 0;
  try {
    for (;;) {
      await client.query('begin');
      const { rows } = await client.query<OutboxRow>(claim);
      if (rows.length > 0) await publishAll(channel, rows, options.window);
      await client.query('commit');
      if (rows.length === 0) return published;
      published += rows.length;
    }
  } finally {
    await channel.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** Publishes every row with at most `window` unconfirmed; resolves when all are acked, rejects on a nack. */
async function publishAll(channel: ConfirmChannel, rows: readonly OutboxRow[], window: number) {
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settled = (error: unknown) => {
    if (error) failure = error;
    inFlight -= 1;
    wake?.();
  };
  for (const row of rows) {
    while (inFlight >= window) await new Promise<void>((resolve) => (wake = resolve));
    if (failure) throw failure;
    inFlight += 1;
    const writable = channel.publish(
      row.exchange,
      row.routing_key,
      row.payload,
      {
        persistent: true,
        mandatory: true,
        messageId: row.message_id,
        contentType: row.content_type,
        ...(row.message_type === null ? {} : { type: row.message_type }),
        timestamp: row.created_s,
        headers: { ...row.headers, 'x-tenant-id': row.tenant_id },
      },
      settled,
    );
    if (!writable) await new Promise((resolve) => channel.once('drain', resolve));
  }
  while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
  if (failure) throw failure;
}
