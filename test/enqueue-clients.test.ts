/**
 * enqueue on every mainstream client's own transaction object, on the real
 * database: the event commits with the business row, rolls back with it, a
 * batch goes in one call, and every value reads back as sent (bytea and jsonb
 * arrays are encoded differently by each driver). Prisma has its own file
 * (enqueue-clients-prisma.test.ts): it needs a generated client.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { EntitySchema, MikroORM } from '@mikro-orm/postgresql';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import { pgSchema, serial, text } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePostgresJs } from 'drizzle-orm/postgres-js';
import knexFactory from 'knex';
import { CamelCasePlugin, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import postgres from 'postgres';
import { DataTypes, Sequelize } from 'sequelize';
import { DataSource } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedExecutorError } from '../src/errors.js';
import { enqueue } from '../src/outbox/enqueue.js';
import type { EnqueuedMessage, InsertedMessage } from '../src/outbox/insert-statements.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { enqueueEveryNotifyShape, listenForWakeUps } from './helpers/wake-ups.js';

let db: TestDatabase;

/**
 * One client library. `write` is the application's code: one transaction in
 * that library's own style that inserts an order noted `note`, enqueues
 * `messages` and, given a `failure`, throws it after the enqueue.
 */
interface ClientCase {
  name: string;
  open(): Promise<void>;
  /** With `returnIds` false, `enqueue`'s default: no row ids come back. */
  write(
    note: string,
    messages: OutboxMessage[],
    failure?: Error,
    returnIds?: boolean,
  ): Promise<EnqueuedMessage[]>;
  /** The pool, database or ORM instance itself, outside any transaction. */
  instance(): unknown;
  close(): Promise<void>;
}

function cases(): ClientCase[] {
  const schema = () => db.schema;
  const options = (returnIds = true) => ({ schema: db.schema, returnIds });
  const insertOrder = () => `insert into "${db.schema}".orders (note) values ($1)`;

  let pool: pg.Pool;
  const pgCase: ClientCase = {
    name: 'a pg PoolClient after begin',
    async open() {
      pool = new pg.Pool({ connectionString: db.url, max: 1 });
    },
    async write(note, messages, failure, returnIds) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query(insertOrder(), [note]);
        const inserted = await enqueue(client, messages, options(returnIds));
        if (failure) throw failure;
        await client.query('commit');
        return inserted;
      } catch (error) {
        await client.query('rollback');
        throw error;
      } finally {
        client.release();
      }
    },
    instance: () => pool,
    close: () => pool.end(),
  };

  let kysely: Kysely<{ orders: { note: string } }>;
  const kyselyCase: ClientCase = {
    name: 'a Kysely transaction',
    async open() {
      kysely = new Kysely({
        dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }),
      });
    },
    write: (note, messages, failure, returnIds) =>
      kysely.transaction().execute(async (trx) => {
        await trx.withSchema(schema()).insertInto('orders').values({ note }).execute();
        const inserted = await enqueue(trx, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => kysely,
    close: () => kysely.destroy(),
  };

  let knex: ReturnType<typeof knexFactory>;
  const knexCase: ClientCase = {
    name: 'a Knex transaction',
    async open() {
      knex = knexFactory({ client: 'pg', connection: db.url, pool: { min: 0, max: 1 } });
    },
    write: (note, messages, failure, returnIds) =>
      knex.transaction(async (trx) => {
        await trx.withSchema(schema()).insert({ note }).into('orders');
        const inserted = await enqueue(trx, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => knex,
    close: () => knex.destroy(),
  };

  const drizzleOrders = () =>
    pgSchema(db.schema).table('orders', { id: serial('id').primaryKey(), note: text('note') });

  let drizzlePool: pg.Pool;
  let drizzlePg: ReturnType<typeof drizzleNodePg>;
  const drizzlePgCase: ClientCase = {
    name: 'a Drizzle transaction on node-postgres',
    async open() {
      drizzlePool = new pg.Pool({ connectionString: db.url, max: 1 });
      drizzlePg = drizzleNodePg(drizzlePool);
    },
    write: (note, messages, failure, returnIds) =>
      drizzlePg.transaction(async (tx) => {
        await tx.insert(drizzleOrders()).values({ note });
        const inserted = await enqueue(tx, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => drizzlePg,
    close: () => drizzlePool.end(),
  };

  let drizzleSql: postgres.Sql;
  let drizzleJs: ReturnType<typeof drizzlePostgresJs>;
  const drizzleJsCase: ClientCase = {
    name: 'a Drizzle transaction on postgres.js',
    async open() {
      drizzleSql = postgres(db.url, { max: 1, onnotice: () => undefined });
      drizzleJs = drizzlePostgresJs(drizzleSql);
    },
    write: (note, messages, failure, returnIds) =>
      drizzleJs.transaction(async (tx) => {
        await tx.insert(drizzleOrders()).values({ note });
        const inserted = await enqueue(tx, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => drizzleJs,
    close: () => drizzleSql.end(),
  };

  let sql: postgres.Sql;
  const postgresJsCase: ClientCase = {
    name: 'a postgres.js sql.begin transaction',
    async open() {
      sql = postgres(db.url, { max: 1, onnotice: () => undefined });
    },
    async write(note, messages, failure, returnIds) {
      return sql.begin(async (tx) => {
        await tx`insert into ${tx(schema())}.orders ${tx({ note })}`;
        const inserted = await enqueue(tx, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }) as Promise<InsertedMessage[]>;
    },
    instance: () => sql,
    close: () => sql.end(),
  };

  let dataSource: DataSource;
  const openTypeOrm = async () => {
    dataSource ??= new DataSource({ type: 'postgres', url: db.url, poolSize: 1 });
    if (!dataSource.isInitialized) await dataSource.initialize();
  };
  const typeOrmManagerCase: ClientCase = {
    name: 'a TypeORM EntityManager in dataSource.transaction',
    open: openTypeOrm,
    write: (note, messages, failure, returnIds) =>
      dataSource.transaction(async (manager) => {
        await manager.query(insertOrder(), [note]);
        const inserted = await enqueue(manager, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => dataSource.manager,
    close: async () => undefined,
  };
  const typeOrmRunnerCase: ClientCase = {
    name: 'a TypeORM QueryRunner after startTransaction',
    open: openTypeOrm,
    async write(note, messages, failure, returnIds) {
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      await runner.startTransaction();
      try {
        await runner.query(insertOrder(), [note]);
        const inserted = await enqueue(runner, messages, options(returnIds));
        if (failure) throw failure;
        await runner.commitTransaction();
        return inserted;
      } catch (error) {
        await runner.rollbackTransaction();
        throw error;
      } finally {
        await runner.release();
      }
    },
    instance: () => dataSource,
    close: () => dataSource.destroy(),
  };

  let sequelize: Sequelize;
  const sequelizeCase: ClientCase = {
    name: 'a Sequelize managed transaction',
    async open() {
      sequelize = new Sequelize(db.url, { logging: false, pool: { min: 0, max: 1 } });
      sequelize.define(
        'Order',
        { note: DataTypes.TEXT },
        { schema: schema(), tableName: 'orders', timestamps: false },
      );
    },
    write: (note, messages, failure, returnIds) =>
      sequelize.transaction(async (transaction) => {
        await sequelize.models.Order?.create({ note }, { transaction });
        const inserted = await enqueue(transaction, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => sequelize,
    close: () => sequelize.close(),
  };

  let orm: MikroORM;
  const Order = new EntitySchema<{ id: number; note: string }>({
    name: 'Order',
    tableName: 'orders',
    properties: { id: { type: 'number', primary: true }, note: { type: 'string' } },
  });
  const mikroOrmCase: ClientCase = {
    name: 'a MikroORM EntityManager in em.transactional',
    async open() {
      orm = await MikroORM.init({
        clientUrl: db.url,
        schema: schema(),
        entities: [Order],
        pool: { min: 0, max: 1 },
      });
    },
    write: (note, messages, failure, returnIds) =>
      orm.em.fork().transactional(async (em) => {
        em.create(Order, { note });
        const inserted = await enqueue(em, messages, options(returnIds));
        if (failure) throw failure;
        return inserted;
      }),
    instance: () => orm.em.fork(),
    close: () => orm.close(),
  };

  return [
    pgCase,
    kyselyCase,
    knexCase,
    drizzlePgCase,
    drizzleJsCase,
    postgresJsCase,
    typeOrmManagerCase,
    typeOrmRunnerCase,
    sequelizeCase,
    mikroOrmCase,
  ];
}

/** Every byte value, so a driver that re-encodes bytea text cannot pass by luck. */
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** A message with every field set, and a payload that varies with `i`. */
function message(i: number, overrides: Partial<OutboxMessage> = {}): OutboxMessage {
  return {
    tenantId: `tenant-${i % 3}`,
    exchange: 'orders',
    routingKey: `orders.created.${i}`,
    type: 'order.created',
    orderingKey: i % 2 === 0 ? `order-${i}` : undefined,
    headers: { attempt: i, tags: ['a', "it's"], nested: { ok: true } },
    messageId: randomUUID(),
    payload: { seq: i, text: 'naïve — "quoted" \\ back' },
    ...overrides,
  };
}

/** The stored rows of `messageIds`, by id. */
async function storedRows(messageIds: readonly (string | undefined)[]) {
  const { rows } = await db.pool.query(
    `select id::text, message_id::text, tenant_id, ordering_key, exchange, routing_key,
       message_type, payload, content_type, headers
     from "${db.schema}".messages m where message_id = any($1::uuid[]) order by m.id`,
    [messageIds],
  );
  return rows;
}

/** What a stored row must hold for `m`, enqueued as `inserted`. */
function expectedRow(m: OutboxMessage, inserted: Partial<InsertedMessage> | undefined) {
  const bytes = Buffer.isBuffer(m.payload) ? m.payload : Buffer.from(JSON.stringify(m.payload));
  return {
    id: inserted?.id,
    message_id: m.messageId,
    tenant_id: m.tenantId,
    ordering_key: m.orderingKey ?? null,
    exchange: m.exchange,
    routing_key: m.routingKey,
    message_type: m.type ?? null,
    payload: bytes,
    content_type: Buffer.isBuffer(m.payload) ? 'application/octet-stream' : 'application/json',
    headers: m.headers ?? {},
  };
}

async function orderCount(note: string): Promise<number> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n from "${db.schema}".orders where note = $1`,
    [note],
  );
  return rows[0].n;
}

const clientCases = cases();

beforeAll(async () => {
  db = await createTestDatabase('enqueue_clients');
  await db.pool.query(
    `create table "${db.schema}".orders (id serial primary key, note text not null)`,
  );
  for (const client of clientCases) await client.open();
});

afterAll(async () => {
  for (const client of clientCases) await client.close().catch(() => undefined);
  await db?.drop();
});

describe.each(clientCases)('enqueue on $name', (client) => {
  it('commits the event with the business row, binary payload byte for byte', async () => {
    const note = randomUUID();
    const m = message(0, { payload: ALL_BYTES });
    const inserted = await client.write(note, [m]);
    expect(await orderCount(note)).toBe(1);
    expect(inserted).toEqual([{ id: expect.stringMatching(/^\d+$/), messageId: m.messageId }]);
    expect(await storedRows([m.messageId])).toEqual([expectedRow(m, inserted[0])]);
  });

  it('rolls the event back with the business row when the transaction throws after enqueue', async () => {
    const note = randomUUID();
    const messages = [message(0), message(1)];
    await expect(client.write(note, messages, new Error('business rule failed'))).rejects.toThrow(
      'business rule failed',
    );
    expect(await orderCount(note)).toBe(0);
    expect(await storedRows(messages.map((m) => m.messageId))).toEqual([]);
  });

  it('inserts a batch in one call and returns the ids of the rows it stored, in input order', async () => {
    const note = randomUUID();
    const messages = Array.from({ length: 50 }, (_, i) =>
      message(i, i % 5 === 0 ? { payload: Buffer.concat([ALL_BYTES, Buffer.from([i])]) } : {}),
    );
    const inserted = await client.write(note, messages);
    expect(await orderCount(note)).toBe(1);
    expect(inserted.map((r) => r.messageId)).toEqual(messages.map((m) => m.messageId));
    const stored = await storedRows(messages.map((m) => m.messageId));
    expect(stored).toEqual(messages.map((m, i) => expectedRow(m, inserted[i])));
  });

  it('by default returns only the message ids (no RETURNING) and stores the same rows', async () => {
    const note = randomUUID();
    const one = [message(0, { payload: ALL_BYTES })];
    const many = Array.from({ length: 20 }, (_, i) => message(i + 1));
    expect(await client.write(note, one, undefined, false)).toStrictEqual([
      { messageId: one[0]?.messageId },
    ]);
    expect(await client.write(note, many, undefined, false)).toStrictEqual(
      many.map((m) => ({ messageId: m.messageId })),
    );
    expect(await orderCount(note)).toBe(2);
    const stored = await storedRows([...one, ...many].map((m) => m.messageId));
    expect(stored).toEqual([...one, ...many].map((m, i) => expectedRow(m, { id: stored[i]?.id })));
  });

  it('sends the wake-up NOTIFY with one row or many, with or without ids', async () => {
    const listener = await listenForWakeUps(db.url, db.store.tables.notifyChannel);
    try {
      const { sent } = await enqueueEveryNotifyShape(
        (i) => message(i),
        (batch, options) => enqueue(client.instance(), batch, options),
        db.schema,
      );
      expect(await listener.heard()).toHaveLength(4);
      expect(await storedRows(sent.map((m) => m.messageId))).toHaveLength(sent.length);
    } finally {
      await listener.close();
    }
  });

  it('also takes the pool or instance itself, outside a transaction: the rows commit on their own', async () => {
    const messages = [message(0), message(1, { payload: ALL_BYTES })];
    const inserted = await enqueue(client.instance(), messages, {
      schema: db.schema,
      returnIds: true,
    });
    expect(await storedRows(messages.map((m) => m.messageId))).toEqual(
      messages.map((m, i) => expectedRow(m, inserted[i])),
    );
  });
});

describe('enqueue on a Kysely with a CamelCasePlugin', () => {
  it('still returns the ids of the rows it stored (the plugin would rename message_id)', async () => {
    const camel = new Kysely<unknown>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 1 }) }),
      plugins: [new CamelCasePlugin()],
    });
    try {
      const messages = [message(0), message(1)];
      const inserted = await camel
        .transaction()
        .execute((trx) => enqueue(trx, messages, { schema: db.schema, returnIds: true }));
      expect(await storedRows(messages.map((m) => m.messageId))).toEqual(
        messages.map((m, i) => expectedRow(m, inserted[i])),
      );
    } finally {
      await camel.destroy();
    }
  });
});

describe('enqueue on clients that rename result columns', () => {
  it('returns the ids of a batch through postgres.js with transform: postgres.camel', async () => {
    const sql = postgres(db.url, { max: 1, onnotice: () => undefined, transform: postgres.camel });
    try {
      const messages = [message(0), message(1)];
      const inserted = await sql.begin((tx) =>
        enqueue(tx, messages, { schema: db.schema, returnIds: true }),
      );
      expect(await storedRows(messages.map((m) => m.messageId))).toEqual(
        messages.map((m, i) => expectedRow(m, inserted[i])),
      );
    } finally {
      await sql.end();
    }
  });

  it('returns the ids of a batch through Knex with a camel-casing postProcessResponse', async () => {
    const camelCase = (key: string) => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    const knex = knexFactory({
      client: 'pg',
      connection: db.url,
      pool: { min: 0, max: 1 },
      postProcessResponse: (result: unknown) =>
        Array.isArray(result)
          ? result.map((row: Record<string, unknown>) =>
              Object.fromEntries(Object.entries(row).map(([k, v]) => [camelCase(k), v])),
            )
          : result,
    });
    try {
      const messages = [message(0), message(1)];
      const inserted = await knex.transaction((trx) =>
        enqueue(trx, messages, { schema: db.schema, returnIds: true }),
      );
      expect(await storedRows(messages.map((m) => m.messageId))).toEqual(
        messages.map((m, i) => expectedRow(m, inserted[i])),
      );
    } finally {
      await knex.destroy();
    }
  });
});

describe('recognising executors', () => {
  it('rejects an unsupported executor with a typed error that names it and lists what is accepted', async () => {
    class OrderRepository {
      save(): void {}
    }
    const attempt = enqueue(new OrderRepository(), message(0), { schema: db.schema });
    await expect(attempt).rejects.toBeInstanceOf(UnsupportedExecutorError);
    await expect(attempt).rejects.toMatchObject({ code: 'UNSUPPORTED_EXECUTOR' });
    await expect(attempt).rejects.toThrow(/an instance of OrderRepository/);
    await expect(attempt).rejects.toThrow(
      /Knex transaction.*Sequelize transaction.*TypeORM EntityManager.*pg Client/,
    );
    await expect(enqueue(undefined, message(0))).rejects.toThrow(/executor is undefined,/);
    await expect(enqueue({ sequelize: 1, transaction: 2 }, message(0))).rejects.toThrow(
      /an object with keys sequelize, transaction/,
    );
  });

  it('names the client a Drizzle database holds when it cannot use it', async () => {
    const fake = { transaction() {}, execute() {}, session: { client: 42 } };
    await expect(enqueue(fake, message(0))).rejects.toThrow(
      /executor is a Drizzle session whose client is a number/,
    );
  });

  it("runs a TypeORM EntityManager's statements through TypeORM, not as a pg client", async () => {
    const calls: unknown[][] = [];
    const manager = {
      getRepository() {},
      async query(...args: unknown[]) {
        calls.push(args);
        return [{ id: '7', message_id: (args[1] as unknown[])[0] }];
      },
    };
    const m = message(0);
    await expect(enqueue(manager, m, { schema: db.schema, returnIds: true })).resolves.toEqual([
      { id: '7', messageId: m.messageId },
    ]);
    expect(calls[0]?.[0]).toMatch(/^insert into/);
    expect(Array.isArray(calls[0]?.[1])).toBe(true);
  });
});
