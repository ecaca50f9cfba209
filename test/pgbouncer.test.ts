/**
 * enqueue through a transaction-mode pooler: a real PgBouncer with fewer
 * server connections (4) than writers (16), so consecutive transactions of
 * one writer land on different server connections. Unnamed statements (the
 * default) survive that; named ones (`preparedStatements: true`) do not. The
 * relay itself connects directly (it needs LISTEN and a session lock).
 */
import { randomUUID } from 'node:crypto';
import knexFactory from 'knex';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { createTestBroker, type TestBroker } from './helpers/broker.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { startPgBouncer, type TestPgBouncer } from './helpers/pgbouncer.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const WRITERS_PER_CLIENT = 4;
const TRANSACTIONS_PER_WRITER = 40;
const SERVER_CONNECTIONS = 4;

let db: TestDatabase;
let broker: TestBroker;
let bouncer: TestPgBouncer;

beforeAll(async () => {
  db = await createTestDatabase('pgbouncer');
  broker = await createTestBroker('pgbouncer');
  await db.pool.query(
    `create table "${db.schema}".orders (id serial primary key, note text not null)`,
  );
  bouncer = await startPgBouncer(db.url, {
    poolMode: 'transaction',
    defaultPoolSize: SERVER_CONNECTIONS,
  });
});

afterAll(async () => {
  await bouncer?.stop();
  await broker?.close();
  await db?.drop();
});

/** One writer's transaction: insert an order, enqueue `messages`, throw `failure` if given. */
type Transaction = (messages: OutboxMessage[], failure?: Error) => Promise<void>;

interface Writer {
  run: Transaction;
  close(): Promise<void>;
}

/**
 * Writers on four clients, each on a connection of its own to PgBouncer.
 * These four cover every way enqueue sends a statement: a pg query config
 * (also under TypeORM, Sequelize, MikroORM's Knex, Drizzle and Prisma's
 * adapter), Kysely's executeQuery, Knex's raw and postgres.js's unsafe.
 */
function openWriters(url: string): Writer[] {
  const options = { schema: db.schema };
  const insertOrder = `insert into "${db.schema}".orders (note) values ($1)`;
  const writers: Writer[] = [];
  for (let i = 0; i < WRITERS_PER_CLIENT; i++) {
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    writers.push({
      async run(messages, failure) {
        const client = await pool.connect();
        try {
          await client.query('begin');
          await client.query(insertOrder, ['pg']);
          await enqueue(client, messages, options);
          if (failure) throw failure;
          await client.query('commit');
        } catch (error) {
          await client.query('rollback');
          throw error;
        } finally {
          client.release();
        }
      },
      close: () => pool.end(),
    });

    const kysely = new Kysely<{ orders: { note: string } }>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
    });
    writers.push({
      run: (messages, failure) =>
        kysely.transaction().execute(async (trx) => {
          await trx.withSchema(db.schema).insertInto('orders').values({ note: 'kysely' }).execute();
          await enqueue(trx, messages, options);
          if (failure) throw failure;
        }),
      close: () => kysely.destroy(),
    });

    const knex = knexFactory({ client: 'pg', connection: url, pool: { min: 0, max: 1 } });
    writers.push({
      run: (messages, failure) =>
        knex.transaction(async (trx) => {
          await trx.withSchema(db.schema).insert({ note: 'knex' }).into('orders');
          await enqueue(trx, messages, options);
          if (failure) throw failure;
        }),
      close: () => knex.destroy(),
    });

    // postgres.js prepares its own queries unless told not to: behind a
    // transaction pooler the application sets prepare: false.
    const sql = postgres(url, { max: 1, prepare: false, onnotice: () => undefined });
    writers.push({
      async run(messages, failure) {
        await sql.begin(async (tx) => {
          await tx`insert into ${tx(db.schema)}.orders ${tx({ note: 'postgres.js' })}`;
          await enqueue(tx, messages, options);
          if (failure) throw failure;
        });
      },
      close: () => sql.end(),
    });
  }
  return writers;
}

function event(writer: number, seq: number): OutboxMessage {
  return {
    tenantId: `tenant-${writer % 5}`,
    exchange: broker.exchange,
    routingKey: `orders.${writer}`,
    orderingKey: `writer-${writer}`,
    messageId: randomUUID(),
    payload: { writer, seq },
  };
}

/** Runs `work` in a transaction on `client`, rolling back if it throws. */
async function inTransaction(client: pg.Client, work: () => Promise<unknown>): Promise<void> {
  await client.query('begin');
  try {
    await work();
    await client.query('commit');
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
}

describe('enqueue through PgBouncer in transaction mode', () => {
  it(`${WRITERS_PER_CLIENT * 4} writers × ${TRANSACTIONS_PER_WRITER} transactions on ${SERVER_CONNECTIONS} server connections commit without one error, and a direct relay publishes each committed event exactly once`, async () => {
    const writers = openWriters(bouncer.url);
    expect(writers).toHaveLength(16);
    const committed: string[] = [];
    const rolledBack: string[] = [];
    const errors: string[] = [];
    const rollback = new Error('business rule failed');
    try {
      await Promise.all(
        writers.map(async (writer, w) => {
          for (let seq = 0; seq < TRANSACTIONS_PER_WRITER; seq++) {
            // One message (the single-row statement) or three (the unnest
            // statement); every eighth transaction rolls back after enqueue.
            const messages = Array.from({ length: seq % 2 === 0 ? 1 : 3 }, () => event(w, seq));
            const fails = seq % 8 === 7;
            try {
              await writer.run(messages, fails ? rollback : undefined);
              committed.push(...messages.map((m) => m.messageId as string));
            } catch (error) {
              if (error === rollback)
                rolledBack.push(...messages.map((m) => m.messageId as string));
              else errors.push(`writer ${w}, transaction ${seq}: ${(error as Error).message}`);
            }
          }
        }),
      );
    } finally {
      for (const writer of writers) await writer.close();
    }
    expect(errors).toEqual([]);
    // Per writer: 20 single-message transactions, 20 of three messages, of
    // which 5 (seq 7, 15, 23, 31, 39) rolled back.
    expect(rolledBack).toHaveLength(16 * 5 * 3);
    expect(committed).toHaveLength(16 * (20 + 15 * 3));
    const { rows } = await db.pool.query(`select count(*)::int as n from "${db.schema}".orders`);
    expect(rows[0].n).toBe(16 * (TRANSACTIONS_PER_WRITER - 5));

    const { relay, close } = await createTestRelay(db, broker.url);
    relay.start();
    try {
      await waitFor(
        () => broker.distinctIds().size >= committed.length,
        `all ${committed.length} committed events to arrive`,
      );
      await waitFor(
        async () => (await db.counts()).pending === 0,
        'the relay to settle every published row',
      );
    } finally {
      await close();
    }
    expect(broker.received).toHaveLength(committed.length);
    expect(broker.distinctIds()).toEqual(new Set(committed));
    expect(rolledBack.filter((id) => broker.distinctIds().has(id))).toEqual([]);
    expect(await db.counts()).toMatchObject({ pending: 0, dead: 0 });
  });

  it('fails with named prepared statements (preparedStatements: true), which is why unnamed ones are the default', async () => {
    const first = new pg.Client({ connectionString: bouncer.url });
    const second = new pg.Client({ connectionString: bouncer.url });
    await first.connect();
    await second.connect();
    try {
      const options = { schema: db.schema, preparedStatements: true };
      // The first client prepares the statement on a server connection;
      // PgBouncer hands that same connection (the most recently used) to the
      // second client, which prepares the same name again.
      await inTransaction(first, () => enqueue(first, event(0, 0), options));
      await expect(
        inTransaction(second, () => enqueue(second, event(1, 0), options)),
      ).rejects.toThrow(/prepared statement "outbox_insert_one:[0-9a-f]{16}" already exists/);
      // Without the option the same sequence goes through.
      const unnamed = { schema: db.schema };
      await inTransaction(first, () => enqueue(first, event(0, 1), unnamed));
      await inTransaction(second, () => enqueue(second, event(1, 1), unnamed));
    } finally {
      await first.end();
      await second.end();
    }
  });
});
