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

/** Every malformed message we know of, with the field the error must name. */
const cases: [string, Record<string, unknown>, string, RegExp][] = [
  ['a missing tenantId', { tenantId: undefined }, 'tenantId', /is required/],
  ['an empty tenantId', { tenantId: '' }, 'tenantId', /must not be empty/],
  ['a blank tenantId', { tenantId: '   ' }, 'tenantId', /must not be empty/],
  ['a numeric tenantId', { tenantId: 42 }, 'tenantId', /must be a string/],
  ['a tenantId over 255 bytes', { tenantId: 'é'.repeat(128) }, 'tenantId', /at most 255 bytes/],
  ['a missing exchange', { exchange: undefined }, 'exchange', /is required/],
  ['an exchange over 255 bytes', { exchange: 'x'.repeat(256) }, 'exchange', /at most 255 bytes/],
  ['a missing routingKey', { routingKey: undefined }, 'routingKey', /is required/],
  ['a non-string routingKey', { routingKey: 7 }, 'routingKey', /must be a string/],
  ['a payload with a BigInt', { payload: { n: 10n } }, 'payload', /not JSON-serializable/],
  ['a circular payload', { payload: circular }, 'payload', /not JSON-serializable/],
  ['a function as payload', { payload: () => 1 }, 'payload', /not JSON-serializable/],
  ['an undefined payload', { payload: undefined }, 'payload', /not JSON-serializable/],
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
  ['a header that is a Date', { headers: { a: new Date() } }, 'headers.a', /got object/],
  ['a header that is a Buffer', { headers: { a: Buffer.from('x') } }, 'headers.a', /got Buffer/],
  [
    'a nested bad header',
    { headers: { a: { b: [1, Symbol('s')] } } },
    'headers.a.b[1]',
    /must be a string, number/,
  ],
  ['a header with a NUL character', { headers: { a: 'x\u0000y' } }, 'headers.a', /NUL/],
  ['an empty header name', { headers: { '': 1 } }, 'headers.', /empty header name/],
  ['headers that are an array', { headers: ['a'] }, 'headers', /plain object/],
  ['headers that are a string', { headers: 'a=1' }, 'headers', /plain object/],
  ['a malformed messageId', { messageId: 'not-a-uuid' }, 'messageId', /must be a UUID/],
  ['a numeric messageId', { messageId: 123 }, 'messageId', /must be a UUID/],
  ['an empty orderingKey', { orderingKey: '' }, 'orderingKey', /must not be empty/],
  ['an empty type', { type: '' }, 'type', /must not be empty/],
  ['an empty contentType', { contentType: '' }, 'contentType', /must not be empty/],
];

describe('enqueue rejects malformed messages before writing anything', () => {
  it.each(cases)('rejects %s', async (_name, change, field, reason) => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const message = { ...valid, ...change };
      const error = await enqueue(client, [valid, message as unknown as OutboxMessage], {
        schema: db.schema,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidMessageError);
      expect(error).toMatchObject({ code: 'INVALID_MESSAGE', field, index: 1 });
      expect((error as Error).message).toMatch(reason);
      // Nothing was written, and the caller's transaction is still usable.
      const { rows } = await client.query(`select count(*)::int as n from "${db.schema}".messages`);
      expect(rows[0].n).toBe(0);
      await client.query('rollback');
    } finally {
      client.release();
    }
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

  it('rejects an invalid schema option', async () => {
    await expect(
      enqueue(db.pool, valid, { schema: 'Robert"; drop table x' }),
    ).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      field: 'options.schema',
    });
  });
});
