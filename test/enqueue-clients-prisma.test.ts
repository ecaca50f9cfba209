/**
 * enqueue on a Prisma 7 interactive transaction (`tx` in
 * `prisma.$transaction(async (tx) => …)`, driver adapter @prisma/adapter-pg),
 * on the real database. The client is generated for this file into a
 * temporary directory: Prisma 7 generates TypeScript and runs its query
 * compiler as WebAssembly, so no engine binary is needed.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { PrismaPg } from '@prisma/adapter-pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import type { EnqueuedMessage, InsertedMessage } from '../src/outbox/insert-statements.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { enqueueEveryNotifyShape, listenForWakeUps } from './helpers/wake-ups.js';

/** The part of the generated client this file uses. */
interface OrdersClient {
  order: { create(args: { data: { note: string } }): Promise<unknown> };
}
interface GeneratedPrismaClient extends OrdersClient {
  $transaction<T>(work: (tx: OrdersClient) => Promise<T>): Promise<T>;
  $disconnect(): Promise<void>;
}

const SCHEMA_PRISMA = `
generator client {
  provider = "prisma-client"
  output   = "./generated"
}

datasource db {
  provider = "postgresql"
}

model Order {
  id   Int    @id @default(autoincrement())
  note String
  @@map("orders")
}
`;

let db: TestDatabase;
let directory: string;
let prisma: GeneratedPrismaClient;

/**
 * Runs `prisma generate` into a temporary directory whose node_modules is
 * this checkout's, and loads the client. The CLI insists on a schema-engine
 * binary before any command, though `generate` never runs it (it parses the
 * schema as WebAssembly); pointing PRISMA_SCHEMA_ENGINE_BINARY at a stub
 * spares a download from binaries.prisma.sh, which CI cannot reach.
 */
async function generateClient(): Promise<new (options: { adapter: unknown }) => unknown> {
  directory = await mkdtemp(join(tmpdir(), 'outbox-prisma-'));
  await symlink(resolve('node_modules'), join(directory, 'node_modules'), 'dir');
  await writeFile(join(directory, 'schema.prisma'), SCHEMA_PRISMA);
  const stub = join(directory, 'schema-engine-unused');
  await writeFile(
    stub,
    '#!/bin/sh\necho "prisma generate does not use the schema engine" >&2\nexit 1\n',
  );
  await chmod(stub, 0o755);
  await promisify(execFile)(
    process.execPath,
    [resolve('node_modules/prisma/build/index.js'), 'generate', '--schema', 'schema.prisma'],
    {
      cwd: directory,
      env: {
        ...process.env,
        PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? stub,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
      },
    },
  );
  const generated = await import(join(directory, 'generated', 'client.ts'));
  return generated.PrismaClient;
}

beforeAll(async () => {
  db = await createTestDatabase('enqueue_prisma');
  await db.pool.query(
    `create table "${db.schema}".orders (id serial primary key, note text not null)`,
  );
  const PrismaClient = await generateClient();
  prisma = new PrismaClient({
    adapter: new PrismaPg({ connectionString: db.url, max: 1 }, { schema: db.schema }),
  }) as GeneratedPrismaClient;
});

afterAll(async () => {
  await prisma?.$disconnect();
  await db?.drop();
  if (directory) await rm(directory, { recursive: true, force: true });
});

/** The application's code: an order and its events in one interactive transaction. */
function write(
  note: string,
  messages: OutboxMessage[],
  failure?: Error,
  returnIds = true,
): Promise<EnqueuedMessage[]> {
  return prisma.$transaction(async (tx) => {
    await tx.order.create({ data: { note } });
    const inserted = await enqueue(tx, messages, { schema: db.schema, returnIds });
    if (failure) throw failure;
    return inserted;
  });
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function message(i: number, payload: OutboxMessage['payload'] = { seq: i }): OutboxMessage {
  return {
    tenantId: `tenant-${i % 3}`,
    exchange: 'orders',
    routingKey: `orders.created.${i}`,
    type: 'order.created',
    orderingKey: i % 2 === 0 ? `order-${i}` : undefined,
    headers: { attempt: i, tags: ['a', "it's"] },
    messageId: randomUUID(),
    payload,
  };
}

async function stored(messages: readonly OutboxMessage[]) {
  const { rows } = await db.pool.query(
    `select id::text, message_id::text, ordering_key, payload, headers
     from "${db.schema}".messages m where message_id = any($1::uuid[]) order by m.id`,
    [messages.map((m) => m.messageId)],
  );
  return rows;
}

function expected(
  messages: readonly OutboxMessage[],
  inserted: readonly Partial<InsertedMessage>[],
) {
  return messages.map((m, i) => ({
    id: inserted[i]?.id,
    message_id: m.messageId,
    ordering_key: m.orderingKey ?? null,
    payload: Buffer.isBuffer(m.payload) ? m.payload : Buffer.from(JSON.stringify(m.payload)),
    headers: m.headers,
  }));
}

async function orderCount(note: string): Promise<number> {
  const { rows } = await db.pool.query(
    `select count(*)::int as n from "${db.schema}".orders where note = $1`,
    [note],
  );
  return rows[0].n;
}

describe('enqueue on a Prisma interactive transaction', () => {
  it('commits the event with the business row, binary payload byte for byte', async () => {
    const note = randomUUID();
    const messages = [message(0, ALL_BYTES)];
    const inserted = await write(note, messages);
    expect(await orderCount(note)).toBe(1);
    expect(await stored(messages)).toEqual(expected(messages, inserted));
  });

  it('rolls the event back with the business row when the transaction throws after enqueue', async () => {
    const note = randomUUID();
    const messages = [message(0), message(1)];
    await expect(write(note, messages, new Error('business rule failed'))).rejects.toThrow(
      'business rule failed',
    );
    expect(await orderCount(note)).toBe(0);
    expect(await stored(messages)).toEqual([]);
  });

  it('by default returns only the message ids (no RETURNING) and stores the same rows', async () => {
    const note = randomUUID();
    const one = [message(0, ALL_BYTES)];
    const many = Array.from({ length: 20 }, (_, i) => message(i + 1));
    expect(await write(note, one, undefined, false)).toStrictEqual([
      { messageId: one[0]?.messageId },
    ]);
    expect(await write(note, many, undefined, false)).toStrictEqual(
      many.map((m) => ({ messageId: m.messageId })),
    );
    expect(await orderCount(note)).toBe(2);
    const rows = await stored([...one, ...many]);
    expect(rows).toEqual(
      expected(
        [...one, ...many],
        rows.map((r) => ({ id: r.id })),
      ),
    );
  });

  it('inserts a batch in one call and returns the ids of the rows it stored, in input order', async () => {
    const note = randomUUID();
    const messages = Array.from({ length: 50 }, (_, i) =>
      message(i, i % 5 === 0 ? Buffer.concat([ALL_BYTES, Buffer.from([i])]) : { seq: i }),
    );
    const inserted = await write(note, messages);
    expect(await orderCount(note)).toBe(1);
    expect(inserted.map((r) => r.messageId)).toEqual(messages.map((m) => m.messageId));
    expect(await stored(messages)).toEqual(expected(messages, inserted));
  });

  it('sends the wake-up NOTIFY with one row or many, with or without ids', async () => {
    const listener = await listenForWakeUps(db.url, db.store.tables.notifyChannel);
    try {
      const { sent } = await enqueueEveryNotifyShape(
        (i) => message(i),
        (batch, options) => prisma.$transaction((tx) => enqueue(tx, batch, options)),
        db.schema,
      );
      expect(await listener.heard()).toHaveLength(4);
      expect(await stored(sent)).toHaveLength(sent.length);
    } finally {
      await listener.close();
    }
  });

  it('also takes the PrismaClient itself, outside a transaction: the rows commit on their own', async () => {
    const messages = [message(0), message(1, ALL_BYTES)];
    const inserted = await enqueue(prisma, messages, { schema: db.schema, returnIds: true });
    expect(await stored(messages)).toEqual(expected(messages, inserted));
  });
});
