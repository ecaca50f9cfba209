import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/errors.js';
import { enqueue } from '../src/outbox/enqueue.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('validation');
});

afterAll(async () => {
  await db?.drop();
});

const valid: OutboxMessage = {
  tenantId: 'acme',
  exchange: 'events',
  routingKey: 'orders',
  payload: { ok: true },
};
const circular: Record<string, unknown> = {};
circular.self = circular;
const circularDeeperList: unknown[] = [];
const circularDeeper = { a: { b: circularDeeperList } };
circularDeeperList.push({ c: circularDeeper });

class Order {
  constructor(readonly id: number) {}
  get total(): number {
    return 42;
  }
}

/** An array of `length` with only the `items` given: the others are holes. */
function sparse(length: number, items: Record<number, unknown>): unknown[] {
  const array = new Array<unknown>(length);
  for (const [at, item] of Object.entries(items)) array[Number(at)] = item;
  return array;
}

/** `levels` arrays nested in one another, innermost empty. */
function nested(levels: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

/** `levels` header objects nested in one another under key `n`. */
function nestedHeader(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { n: value };
  return value;
}

// 7,000 doubles (9 bytes each in an AMQP table, 4 in JSON) and a string: with
// x-tenant-id for 'acme' the table is 44 + 9 × 7000 + 2493 = 65,537 bytes, one
// over (test/enqueue-values.test.ts publishes the largest one accepted).
const overAmqpTable = { nums: Array<number>(7000).fill(0.5), pad: 'x'.repeat(2493) };

/** Every malformed message we know of, with the field the error must name. */
const cases: [string, Record<string, unknown>, string, RegExp][] = [
  ['a missing tenantId', { tenantId: undefined }, 'tenantId', /is required/],
  ['an empty tenantId', { tenantId: '' }, 'tenantId', /must not be empty/],
  ['a blank tenantId', { tenantId: '   ' }, 'tenantId', /must not be empty/],
  ['a numeric tenantId', { tenantId: 42 }, 'tenantId', /must be a string/],
  ['a tenantId over 255 bytes', { tenantId: 'é'.repeat(128) }, 'tenantId', /at most 255 bytes/],
  ['a tenantId with a NUL character', { tenantId: 'ac\u0000me' }, 'tenantId', /NUL/],
  ['a tenantId with a lone surrogate', { tenantId: 'acme\ud800' }, 'tenantId', /lone UTF-16/],
  ['a missing exchange', { exchange: undefined }, 'exchange', /is required/],
  ['an exchange over 255 bytes', { exchange: 'x'.repeat(256) }, 'exchange', /at most 255 bytes/],
  ['an exchange with a NUL character', { exchange: 'ev\u0000' }, 'exchange', /NUL/],
  ['an exchange with a lone surrogate', { exchange: '\udc00ev' }, 'exchange', /lone UTF-16/],
  ['a missing routingKey', { routingKey: undefined }, 'routingKey', /is required/],
  ['a non-string routingKey', { routingKey: 7 }, 'routingKey', /must be a string/],
  ['a routingKey with a NUL character', { routingKey: 'a.\u0000' }, 'routingKey', /NUL/],
  ['a routingKey with a lone surrogate', { routingKey: 'a.\ud83d' }, 'routingKey', /lone UTF-16/],
  ['a type with a NUL character', { type: 'order\u0000' }, 'type', /NUL/],
  ['a type with a lone surrogate', { type: 'order\ud800' }, 'type', /lone UTF-16/],
  ['an orderingKey with a NUL character', { orderingKey: '\u0000' }, 'orderingKey', /NUL/],
  ['an orderingKey with a lone surrogate', { orderingKey: 'k\udfff' }, 'orderingKey', /UTF-16/],
  ['a contentType with a NUL character', { contentType: 'a/b\u0000' }, 'contentType', /NUL/],
  ['a contentType with a lone surrogate', { contentType: 'a/\ud800' }, 'contentType', /UTF-16/],
  ['a contentType over 255 bytes', { contentType: 'a'.repeat(256) }, 'contentType', /255/],

  ['an undefined payload', { payload: undefined }, 'payload', /is undefined/],
  ['a function as payload', { payload: () => 1 }, 'payload', /is a function/],
  ['a symbol as payload', { payload: Symbol('s') }, 'payload', /is a symbol/],
  ['NaN as payload', { payload: Number.NaN }, 'payload', /is NaN/],
  [
    'a NaN price in the second item of the payload',
    { payload: { items: [{ price: 1 }, { price: Number.NaN }] } },
    'payload.items[1].price',
    /is NaN, which JSON cannot represent/,
  ],
  [
    'Infinity in the payload',
    { payload: { n: Number.POSITIVE_INFINITY } },
    'payload.n',
    /is Infinity/,
  ],
  [
    '-Infinity in the payload',
    { payload: [Number.NEGATIVE_INFINITY] },
    'payload[0]',
    /is -Infinity/,
  ],
  ['a BigInt in the payload', { payload: { n: 10n } }, 'payload.n', /is a bigint/],
  ['a function in the payload', { payload: { f: () => 1 } }, 'payload.f', /is a function/],
  ['a symbol in the payload', { payload: { s: Symbol('s') } }, 'payload.s', /is a symbol/],
  [
    'a hole in an array of the payload',
    { payload: { list: sparse(3, { 0: 1, 2: 3 }) } },
    'payload.list[1]',
    /is a hole in a sparse array/,
  ],
  [
    'undefined in an array of the payload',
    { payload: { list: [1, undefined] } },
    'payload.list[1]',
    /is undefined, which JSON would write as null/,
  ],
  [
    'a payload object with its own toJSON',
    { payload: { a: 1, toJSON: () => 'other' } },
    'payload.toJSON',
    /is a function/,
  ],
  [
    'a class instance in the payload',
    { payload: { order: new Order(1) } },
    'payload.order',
    /is an Order, not a plain object/,
  ],
  ['a Map in the payload', { payload: { m: new Map([['a', 1]]) } }, 'payload.m', /is a Map/],
  ['a Set in the payload', { payload: [new Set([1])] }, 'payload[0]', /is a Set/],
  ['a boxed number in the payload', { payload: { n: new Number(1) } }, 'payload.n', /is a Number/],
  [
    'a Buffer inside a JSON payload',
    { payload: { file: Buffer.from('x') } },
    'payload.file',
    /inside a JSON payload/,
  ],
  [
    'a Uint8Array inside a JSON payload',
    { payload: { file: new Uint8Array(2) } },
    'payload.file',
    /inside a JSON payload/,
  ],
  [
    'a payload object with a symbol key',
    { payload: { meta: { a: 1, [Symbol('k')]: 2 } } },
    'payload.meta',
    /symbol-keyed properties, which JSON leaves out/,
  ],
  ['an invalid Date', { payload: { at: new Date(Number.NaN) } }, 'payload.at', /invalid Date/],
  ['a circular payload', { payload: circular }, 'payload.self', /circular/],
  [
    'a payload that refers back to itself three levels down',
    { payload: circularDeeper },
    'payload.a.b[0].c',
    /circular/,
  ],
  [
    'a payload nested 129 levels deep',
    { payload: nested(129) },
    `payload${'[0]'.repeat(128)}`,
    /deeper than 128 levels/,
  ],
  [
    'a payload property whose getter throws',
    {
      payload: {
        get x() {
          throw new Error('boom');
        },
      },
    },
    'payload.x',
    /cannot be read: boom/,
  ],
  ['an ArrayBuffer payload', { payload: new ArrayBuffer(4) }, 'payload', /Buffer or Uint8Array/],
  [
    'a DataView payload',
    { payload: new DataView(new ArrayBuffer(4)) },
    'payload',
    /Buffer or Uint8Array/,
  ],
  ['a Float64Array payload', { payload: new Float64Array(2) }, 'payload', /Float64Array/],
  ['a Uint16Array payload', { payload: new Uint16Array(2) }, 'payload', /Uint16Array/],
  [
    'a payload over the limit',
    { payload: 'x'.repeat(1024 * 1024) },
    'payload',
    /over the limit of 1048576/,
  ],
  [
    'a Buffer over the limit',
    { payload: Buffer.alloc(1024 * 1024 + 1) },
    'payload',
    /over the limit/,
  ],

  [
    'a header that is undefined',
    { headers: { a: undefined } },
    'headers.a',
    /must be a string, number/,
  ],
  [
    'a header that is a function',
    { headers: { a: () => 1 } },
    'headers.a',
    /must be a string, number/,
  ],
  ['a header that is a BigInt', { headers: { a: 1n } }, 'headers.a', /must be a string, number/],
  ['a header that is NaN', { headers: { a: Number.NaN } }, 'headers.a', /finite number/],
  [
    'a header that is Infinity',
    { headers: { a: Number.POSITIVE_INFINITY } },
    'headers.a',
    /finite number/,
  ],
  [
    'a header that is -Infinity in an array',
    { headers: { a: [1, Number.NEGATIVE_INFINITY] } },
    'headers.a[1]',
    /finite number/,
  ],
  [
    'a header number with a fraction that AMQP would send as an integer',
    { headers: { a: 2 ** 50 + 0.5 } },
    'headers.a',
    /cannot send its fraction/,
  ],
  [
    'a header number below the smallest 64-bit integer',
    { headers: { a: { b: -1e19 } } },
    'headers.a.b',
    /below the smallest 64-bit integer/,
  ],
  ['a header that is a Date', { headers: { a: new Date() } }, 'headers.a', /got object/],
  ['a header that is a Map', { headers: { a: new Map() } }, 'headers.a', /got object/],
  ['a header that is a Buffer', { headers: { a: Buffer.from('x') } }, 'headers.a', /got Buffer/],
  [
    'a nested bad header',
    { headers: { a: { b: [1, Symbol('s')] } } },
    'headers.a.b[1]',
    /must be a string, number/,
  ],
  [
    'undefined in a header array',
    { headers: { a: ['x', undefined] } },
    'headers.a[1]',
    /got undefined/,
  ],
  [
    'a hole in a header array',
    { headers: { a: sparse(3, { 0: 'x', 2: 'z' }) } },
    'headers.a[1]',
    /got undefined/,
  ],
  [
    'a header nested 17 levels deep',
    { headers: { a: nestedHeader(16) } },
    `headers.a${'.n'.repeat(16)}`,
    /deeper than 16 levels/,
  ],
  ['a header with a NUL character', { headers: { a: 'x\u0000y' } }, 'headers.a', /NUL/],
  ['a header with a lone surrogate', { headers: { a: ['x\ud800'] } }, 'headers.a[0]', /UTF-16/],
  ['a header name with a NUL character', { headers: { 'a\u0000': 1 } }, 'headers.a\u0000', /NUL/],
  ['a header name with a lone surrogate', { headers: { '\udc00': 1 } }, 'headers.\udc00', /UTF-16/],
  [
    'a nested header name with a NUL character',
    { headers: { a: { 'b\u0000': 1 } } },
    'headers.a.b\u0000',
    /NUL/,
  ],
  ['an empty header name', { headers: { '': 1 } }, 'headers.', /empty header name/],
  [
    'a header name over 255 bytes',
    { headers: { ['é'.repeat(128)]: 1 } },
    `headers.${'é'.repeat(128)}`,
    /header name must be at most 255 bytes/,
  ],
  [
    'a nested header name over 255 bytes',
    { headers: { a: { ['k'.repeat(256)]: 1 } } },
    `headers.a.${'k'.repeat(256)}`,
    /header name must be at most 255 bytes/,
  ],
  [
    "a nested header object with a '!' key, which amqplib reads as a type annotation",
    { headers: { at: { '!': 'timestamp', value: 1 } } },
    'headers.at.!',
    /read by amqplib as a type tag/,
  ],
  [
    'headers over 60 KiB as JSON',
    { headers: { a: 'x'.repeat(61 * 1024) } },
    'headers',
    /at most 60 KiB as JSON/,
  ],
  [
    'headers whose AMQP table would be one byte over what amqplib can encode',
    { headers: overAmqpTable },
    'headers',
    /AMQP field table of at most 65536 bytes .* got 65537/,
  ],
  ['headers with a symbol key', { headers: { [Symbol('k')]: 1 } }, 'headers', /symbol keys/],
  [
    'a nested header object with a symbol key',
    { headers: { a: { [Symbol('k')]: 1 } } },
    'headers.a',
    /symbol-keyed/,
  ],
  [
    'a CC header that is not an array (RabbitMQ would close the channel)',
    { headers: { CC: 'someone@example.com' } },
    'headers.CC',
    /must be an array \(of routing keys\)/,
  ],
  [
    'a BCC header (RabbitMQ would remove it before delivery)',
    { headers: { BCC: ['audit'] } },
    'headers.BCC',
    /removed by RabbitMQ/,
  ],
  ['headers that are an array', { headers: ['a'] }, 'headers', /plain object/],
  ['headers that are a string', { headers: 'a=1' }, 'headers', /plain object/],
  ['headers that are a Map', { headers: new Map([['a', 1]]) }, 'headers', /plain object/],
  ['a malformed messageId', { messageId: 'not-a-uuid' }, 'messageId', /must be a UUID/],
  ['a numeric messageId', { messageId: 123 }, 'messageId', /must be a UUID/],
  ['a BigInt messageId', { messageId: 123n }, 'messageId', /must be a UUID, got bigint/],
  ['an empty orderingKey', { orderingKey: '' }, 'orderingKey', /must not be empty/],
  ['an empty type', { type: '' }, 'type', /must not be empty/],
  ['an empty contentType', { contentType: '' }, 'contentType', /must not be empty/],
];

/** Message lists that are malformed as lists, with the index the error must name. */
const lists: [string, unknown[], string, number, RegExp][] = [
  [
    'a hole in the array of messages',
    sparse(3, { 0: valid, 2: valid }),
    'message',
    1,
    /a hole in a sparse array/,
  ],
  ['a number among the messages', [valid, 42], 'message', 1, /must be an object, got number/],
  ['null among the messages', [valid, valid, null], 'message', 2, /must be an object, got null/],
  ['undefined among the messages', [undefined], 'message', 0, /must be an object, got undefined/],
];

/**
 * Runs `messages` through `enqueue` inside a transaction, on a client that
 * counts the statements it is sent, and returns the error. Then proves the
 * transaction is still usable: another enqueue in it succeeds and commits.
 */
async function rejectionInTransaction(messages: unknown[]): Promise<unknown> {
  const { rows: before } = await db.pool.query(
    `select coalesce(max(id), 0) as last from "${db.schema}".messages`,
  );
  const client = await db.pool.connect();
  let broken = true;
  try {
    await client.query('begin');
    let statements = 0;
    const counting = {
      query: (config: pg.QueryConfig) => {
        statements += 1;
        return client.query(config);
      },
    };
    const error = await enqueue(counting, messages as OutboxMessage[], { schema: db.schema }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(statements).toBe(0);
    const marker = `after-${randomUUID()}`;
    await enqueue(client, { ...valid, tenantId: marker }, { schema: db.schema });
    await client.query('commit');
    broken = false;
    // The transaction committed the marker row and nothing else.
    const { rows } = await db.pool.query(
      `select tenant_id from "${db.schema}".messages where id > $1`,
      [before[0].last],
    );
    expect(rows).toEqual([{ tenant_id: marker }]);
    return error;
  } finally {
    // A connection left inside a failed transaction is closed, not pooled.
    client.release(broken);
  }
}

describe('enqueue rejects malformed messages before sending any SQL', () => {
  it.each(cases)('rejects %s', async (_name, change, field, reason) => {
    const error = await rejectionInTransaction([valid, { ...valid, ...change }]);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect(error).toMatchObject({ code: 'INVALID_MESSAGE', field, index: 1 });
    expect((error as Error).message).toMatch(reason);
  });

  it.each(lists)('rejects %s', async (_name, messages, field, index, reason) => {
    const error = await rejectionInTransaction(messages);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect(error).toMatchObject({ code: 'INVALID_MESSAGE', field, index });
    expect((error as Error).message).toMatch(reason);
  });

  it('rejects a message that is not an object', async () => {
    await expect(
      enqueue(db.pool, 'hello' as unknown as OutboxMessage, { schema: db.schema }),
    ).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      field: 'message',
    });
  });

  it('honours a configured payload limit', async () => {
    await expect(
      enqueue(
        db.pool,
        { ...valid, payload: 'x'.repeat(20) },
        { schema: db.schema, maxPayloadBytes: 10 },
      ),
    ).rejects.toMatchObject({ code: 'INVALID_MESSAGE', field: 'payload' });
  });

  it('refuses notify with a schema too long for its channel, before any SQL, and keeps the transaction usable', async () => {
    const schema = `s${'x'.repeat(50)}`; // 51 characters: a valid schema name
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await expect(enqueue(client, valid, { schema, notify: true })).rejects.toMatchObject({
        code: 'INVALID_MESSAGE',
        field: 'options.notify',
        message: expect.stringMatching(/at most 50 characters/),
      });
      expect((await client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
      await client.query('rollback');
    } finally {
      client.release();
    }
  });

  it('rejects an invalid schema option', async () => {
    await expect(
      enqueue(db.pool, valid, { schema: 'Robert"; drop table x' }),
    ).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      field: 'options.schema',
    });
  });
});
