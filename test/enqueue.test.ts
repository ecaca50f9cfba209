import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UnsupportedExecutorError } from '../src/errors.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { orderEvent } from './helpers/messages.js';
import { enqueueEveryNotifyShape, listenForWakeUps } from './helpers/wake-ups.js';

let db: TestDatabase;
let kysely: Kysely<unknown>;

beforeAll(async () => {
  db = await createTestDatabase('enqueue');
  kysely = new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
  });
});

afterAll(async () => {
  await kysely?.destroy();
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query(`truncate "${db.schema}".messages`);
});

async function rows(): Promise<Record<string, unknown>[]> {
  const result = await db.pool.query(
    `select id::text, message_id::text, tenant_id, ordering_key, exchange, routing_key, message_type,
       convert_from(payload, 'UTF8') as payload, content_type, headers, attempts
     from "${db.schema}".messages m order by m.id`,
  );
  return result.rows;
}

describe('enqueue', () => {
  it("joins a Kysely transaction: the rows exist only if the caller's transaction commits", async () => {
    await kysely.transaction().execute(async (trx) => {
      await enqueue(trx, orderEvent('events', 'acme', 1), { schema: db.schema });
    });
    await expect(
      kysely.transaction().execute(async (trx) => {
        await enqueue(trx, orderEvent('events', 'acme', 2), { schema: db.schema });
        throw new Error('business rule failed');
      }),
    ).rejects.toThrow('business rule failed');
    expect((await rows()).map((r) => JSON.parse(String(r.payload)).seq)).toEqual([1]);
  });

  it("joins a pg client's transaction and stores every field of the message", async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const [inserted] = await enqueue(
        client,
        {
          tenantId: 'acme',
          exchange: 'events',
          routingKey: 'orders.created',
          type: 'order.created',
          payload: { orderId: 42, total: '9.99' },
          headers: { source: 'checkout', retries: 0, flags: ['a', 'b'] },
          messageId: '0F3A2B4C-1D2E-4F50-8A6B-7C8D9E0F1A2B',
          orderingKey: 'order-42',
        },
        { schema: db.schema, returnIds: true },
      );
      await client.query('commit');
      expect(inserted?.messageId).toBe('0f3a2b4c-1d2e-4f50-8a6b-7c8d9e0f1a2b');
      expect(await rows()).toEqual([
        {
          id: inserted?.id,
          message_id: '0f3a2b4c-1d2e-4f50-8a6b-7c8d9e0f1a2b',
          tenant_id: 'acme',
          ordering_key: 'order-42',
          exchange: 'events',
          routing_key: 'orders.created',
          message_type: 'order.created',
          payload: '{"orderId":42,"total":"9.99"}',
          content_type: 'application/json',
          headers: { source: 'checkout', retries: 0, flags: ['a', 'b'] },
          attempts: 0,
        },
      ]);
    } finally {
      client.release();
    }
  });

  it('inserts 1,000 messages in one call, returning ids and message ids in input order', async () => {
    const messages = Array.from({ length: 1000 }, (_, i) => orderEvent('events', `t${i % 3}`, i));
    const inserted = await kysely
      .transaction()
      .execute((trx) => enqueue(trx, messages, { schema: db.schema, returnIds: true }));
    expect(inserted).toHaveLength(1000);
    const stored = await rows();
    expect(stored.map((r) => r.id)).toEqual(inserted.map((r) => r.id));
    expect(stored.map((r) => r.message_id)).toEqual(inserted.map((r) => r.messageId));
    expect(stored.map((r) => JSON.parse(String(r.payload)).seq)).toEqual(messages.map((_, i) => i));
    expect(new Set(inserted.map((r) => r.messageId)).size).toBe(1000);
  });

  it("accepts any executor shaped like a pg client (the application's own copy of pg)", async () => {
    const client = await db.pool.connect();
    try {
      // Not an instance of our pg's Client: only the shape matters.
      const foreign = { query: (config: pg.QueryConfig) => client.query(config) };
      const [inserted] = await enqueue(foreign, orderEvent('events', 'acme', 1), {
        schema: db.schema,
        returnIds: true,
      });
      expect(inserted?.id).toMatch(/^\d+$/);
      expect(await rows()).toHaveLength(1);
    } finally {
      client.release();
    }
  });

  it('rejects something that is not an executor before doing anything', async () => {
    await expect(enqueue({}, orderEvent('events', 'acme', 1))).rejects.toThrow(
      UnsupportedExecutorError,
    );
    await expect(enqueue(null, orderEvent('events', 'acme', 1))).rejects.toThrow(
      /Kysely instance or transaction/,
    );
  });

  it('stores Buffer payloads as bytes with their content type', async () => {
    const bytes = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    await enqueue(
      db.pool,
      orderEvent('events', 'acme', 1, { payload: bytes, contentType: 'application/x-protobuf' }),
      {
        schema: db.schema,
      },
    );
    const { rows: stored } = await db.pool.query(
      `select payload, content_type from "${db.schema}".messages`,
    );
    expect(stored[0].payload.equals(bytes)).toBe(true);
    expect(stored[0].content_type).toBe('application/x-protobuf');
  });

  it('sends a NOTIFY only when asked to', async () => {
    const listener = await listenForWakeUps(db.url, db.store.tables.notifyChannel);
    try {
      await enqueue(db.pool, orderEvent('events', 'acme', 1), { schema: db.schema });
      await enqueue(db.pool, orderEvent('events', 'acme', 2), { schema: db.schema, notify: true });
      expect(await listener.heard()).toEqual([db.store.tables.notifyChannel]);
    } finally {
      await listener.close();
    }
  });

  it('sends the NOTIFY and stores the rows in every statement shape: one or many rows, with or without ids', async () => {
    const listener = await listenForWakeUps(db.url, db.store.tables.notifyChannel);
    try {
      let seq = 0;
      const { returned } = await enqueueEveryNotifyShape(
        () => orderEvent('events', 'acme', ++seq),
        (batch, options) => enqueue(db.pool, batch, options),
        db.schema,
      );
      expect(await listener.heard()).toHaveLength(4);
      const stored = await rows();
      expect(stored.map((r) => JSON.parse(String(r.payload)).seq)).toEqual([
        1, 2, 3, 4, 5, 6, 7, 8,
      ]);
      // The first four calls' rows came back without ids, the last four with theirs.
      expect(returned).toEqual(
        stored.map((r, i) =>
          i < 4 ? { messageId: r.message_id } : { id: r.id, messageId: r.message_id },
        ),
      );
    } finally {
      await listener.close();
    }
  });

  it('needs only INSERT on the table by default, and SELECT on the returned columns for returnIds', async () => {
    const role = `outbox_writer_${db.schema}`.slice(0, 63);
    await db.pool.query(`create role "${role}" nologin`);
    const client = await db.pool.connect();
    try {
      await db.pool.query(`grant usage on schema "${db.schema}" to "${role}"`);
      await db.pool.query(`grant insert on "${db.schema}".messages to "${role}"`);
      const asWriter = async (returnIds: boolean) => {
        await client.query('begin');
        try {
          await client.query(`set local role "${role}"`);
          return await enqueue(client, orderEvent('events', 'acme', 1), {
            schema: db.schema,
            returnIds,
          });
        } finally {
          await client.query('rollback');
        }
      };
      expect(await asWriter(false)).toEqual([{ messageId: expect.any(String) }]);
      await expect(asWriter(true)).rejects.toThrow(/permission denied/);
      await db.pool.query(`grant select (id, message_id) on "${db.schema}".messages to "${role}"`);
      expect(await asWriter(true)).toEqual([
        { id: expect.stringMatching(/^\d+$/), messageId: expect.any(String) },
      ]);
    } finally {
      client.release();
      await db.pool.query(`drop owned by "${role}"`);
      await db.pool.query(`drop role "${role}"`);
    }
  });
});
