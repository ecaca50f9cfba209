import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/errors.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { encodeMessage, type HeaderValue, type OutboxMessage } from '../src/outbox/message.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('values', { resetEachTest: true });

/** A message to the fixture's exchange for tenant `acme`, with `extra`. */
function message(extra: Partial<OutboxMessage>): OutboxMessage {
  return {
    tenantId: 'acme',
    exchange: fixture.broker.exchange,
    routingKey: 'values',
    payload: null,
    ...extra,
  };
}

/** `levels` arrays nested in one another, innermost empty. */
function nested(levels: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

/** `levels` header objects nested in one another under key `n`, around `leaf`. */
function nestedHeader(levels: number, leaf: HeaderValue): HeaderValue {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = { n: value };
  return value;
}

/** The outbox rows' payload bytes and headers, in insertion order. */
async function storedRows(): Promise<{ payload: Buffer; headers: unknown }[]> {
  const { rows } = await fixture.db.pool.query(
    `select payload, headers from "${fixture.db.schema}".messages order by id`,
  );
  return rows;
}

/** Enqueues each message alone (the single-row INSERT), then all in one call (unnest). */
async function enqueueBothWays(messages: OutboxMessage[]): Promise<void> {
  for (const m of messages) await enqueue(fixture.db.pool, m, { schema: fixture.db.schema });
  await enqueue(fixture.db.pool, messages, { schema: fixture.db.schema });
}

/** `value` with every -0 made 0, as JSON writes it (plain objects and arrays only). */
function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v)]));
  }
  return value;
}

const shared = { id: 1 };
const nullPrototype = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });

/** JSON values that are easy to get wrong, each of which must come back exactly. */
const jsonValues: [string, unknown][] = [
  ['unicode and emoji', { text: 'héllo wörld ✓ 日本語 😀 👩‍👩‍👧 \u{10ffff}' }],
  ['characters JSON escapes', { s: '"\\\n\t\r\b\f\u0001\u001f' }],
  ['NUL, DEL and line separators', { s: 'a\u0000b\u007f\u2028\u2029' }],
  ['lone surrogates in values and keys', { hi: '\ud800', lo: 'x\udc00y', '\ud83d': 'key' }],
  ['an empty object', {}],
  ['an empty array', []],
  ['empty containers nested', { a: [], b: {}, c: [[], [{}]] }],
  ['an empty string', ''],
  ['a bare string', 'order created'],
  ['null', null],
  ['false', false],
  ['the largest finite number', Number.MAX_VALUE],
  ['the smallest positive number', Number.MIN_VALUE],
  [
    'large, small and inexact finite numbers',
    [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 64, 1e21, 1e-7, 0.1 + 0.2, -1.5e-300],
  ],
  ['unusual keys', { '': 1, 'a.b': 2, '[0]': 3, ' ': 4, constructor: 5, toString: 6, 1: 7 }],
  ['an own __proto__ key', JSON.parse('{"__proto__": {"x": 1}}')],
  ['an object without a prototype', nullPrototype],
  ['arrays nested 128 levels deep, the most accepted', nested(128)],
  ['a wide array', Array.from({ length: 1000 }, (_, i) => ({ i, s: `#${i}` }))],
  ['one object reached twice (shared, not circular)', { a: shared, b: [shared] }],
];

describe('enqueue stores unusual but faithful values exactly', () => {
  it('stores JSON payloads as the bytes JSON.stringify writes, and JSON.parse gives each value back', async () => {
    await enqueueBothWays(jsonValues.map(([, payload]) => message({ payload })));
    const stored = await storedRows();
    expect(stored).toHaveLength(2 * jsonValues.length);
    stored.forEach((row, i) => {
      const [name, value] = jsonValues[i % jsonValues.length] as [string, unknown];
      expect(row.payload.toString('utf8'), name).toBe(JSON.stringify(value));
      expect(JSON.parse(row.payload.toString('utf8')), name).toEqual(value);
    });
  });

  it('writes a valid Date as its ISO string, -0 as 0 and leaves out undefined properties, as JSON does', async () => {
    const payload = {
      at: new Date('2024-05-01T10:00:00.123Z'),
      farFuture: new Date(8.64e15),
      zero: -0,
      gone: undefined,
      kept: 1,
    };
    await enqueue(fixture.db.pool, message({ payload }), { schema: fixture.db.schema });
    const [row] = await storedRows();
    expect(row?.payload.toString('utf8')).toBe(
      '{"at":"2024-05-01T10:00:00.123Z","farFuture":"+275760-09-13T00:00:00.000Z","zero":0,"kept":1}',
    );
    expect(row?.payload.toString('utf8')).toBe(JSON.stringify(payload));
  });

  it('stores Buffer and Uint8Array payloads byte for byte, views into larger buffers included', async () => {
    const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const large = new Uint8Array(64).map((_, i) => 255 - i);
    const payloads: Uint8Array[] = [
      everyByte,
      large.subarray(3, 10),
      Buffer.from('pooled'), // a slice of Node's shared buffer pool
      everyByte.subarray(250),
      Buffer.alloc(0),
      new Uint8Array(0),
    ];
    await enqueueBothWays(payloads.map((payload) => message({ payload })));
    const stored = await storedRows();
    expect(stored).toHaveLength(2 * payloads.length);
    stored.forEach((row, i) => {
      const expected = payloads[i % payloads.length] as Uint8Array;
      expect(row.payload.equals(expected), `payload ${i}`).toBe(true);
    });
  });

  it('stores unusual header values in jsonb so that they read back exactly', async () => {
    const headers: Record<string, HeaderValue> = {
      text: 'héllo 😀 日本語 \u{10ffff}',
      empty: '',
      list: [],
      table: {},
      [`${'é'.repeat(127)}x`]: 'a name of exactly 255 bytes',
      safe: 2 ** 53 + 2,
      int64Min: -(2 ** 63),
      huge: 1e300,
      tiny: 5e-324,
      tenth: 0.1,
      fraction: -(2 ** 49 + 0.5),
      deepest: nestedHeader(15, 'at depth 16'),
      mixed: [1, 'two', true, null, { three: [3] }],
    };
    await enqueueBothWays([message({ headers })]);
    const stored = await storedRows();
    expect(stored.map((row) => row.headers)).toEqual([headers, headers]);
  });
});

describe('the relay publishes what enqueue accepted, unchanged', () => {
  it('publishes unusual payloads and headers through RabbitMQ, up to the largest header table amqplib encodes', async () => {
    const unusual = jsonValues.slice(0, 4).map(([, value]) => value);
    const headers: Record<string, HeaderValue> = {
      text: 'héllo 😀',
      safe: 2 ** 53 + 2,
      int64Min: -(2 ** 63),
      huge: 1e300,
      tiny: 5e-324,
      fraction: -(2 ** 49 + 0.5),
      deepest: nestedHeader(15, 'at depth 16'),
      empty: { list: [], table: {} },
      CC: ['values.copy'], // RabbitMQ also routes on it, and delivers it
    };
    // Exactly 65,536 bytes as an AMQP table with x-tenant-id ('acme'):
    // 4 (length) + 21 (x-tenant-id) + 10 + 9 × 7000 (nums) + 9 + 2492 (pad).
    const largest = { nums: Array<number>(7000).fill(0.5), pad: 'x'.repeat(2492) };
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const messages = [
      message({ payload: unusual, headers }),
      message({ payload: { big: true }, headers: largest }),
      message({ payload: bytes }),
    ];
    const inserted = await enqueue(fixture.db.pool, messages, { schema: fixture.db.schema });
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      expect(await relay.runOnce()).toMatchObject({ published: 3, failed: 0, dead: 0 });
      await waitFor(() => fixture.broker.received.length === 3, 'the three messages to arrive');
    } finally {
      await close();
    }
    const byId = new Map(fixture.broker.received.map((m) => [m.messageId, m]));
    const [first, second, third] = inserted.map((row) => byId.get(row.messageId));
    expect(first?.body.toString('utf8')).toBe(JSON.stringify(unusual));
    expect(JSON.parse(String(first?.body.toString('utf8')))).toEqual(unusual);
    expect(first?.properties.headers).toEqual({ ...headers, 'x-tenant-id': 'acme' });
    expect(second?.properties.headers).toEqual({ ...largest, 'x-tenant-id': 'acme' });
    expect(third?.body.equals(bytes)).toBe(true);
  });
});

describe('the payload walk agrees with JSON', () => {
  const options = { maxPayloadBytes: 1024 * 1024 };
  const base = { tenantId: 'acme', exchange: 'events', routingKey: 'orders' };

  it('writes every JSON value exactly as JSON.stringify does', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (payload) => {
        const row = encodeMessage({ ...base, payload }, 0, options);
        expect(row.payload.toString('utf8')).toBe(JSON.stringify(payload));
      }),
      { seed: 20_240_501, numRuns: 2000 },
    );
  });

  it('accepts any value only if JSON.parse gives it back, and otherwise throws InvalidMessageError', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withMap: true,
      withSet: true,
      withSparseArray: true,
      withTypedArray: true,
      withNullPrototype: true,
      withObjectString: true,
      maxDepth: 4,
    });
    fc.assert(
      fc.property(anything, (payload) => {
        let row: ReturnType<typeof encodeMessage>;
        try {
          row = encodeMessage({ ...base, payload }, 0, options);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidMessageError);
          return;
        }
        if (payload instanceof Uint8Array) {
          expect(row.payload.equals(payload)).toBe(true);
          return;
        }
        const text = row.payload.toString('utf8');
        expect(text).toBe(JSON.stringify(payload));
        expect(JSON.parse(text)).toEqual(withoutNegativeZero(payload));
      }),
      { seed: 20_240_501, numRuns: 2000 },
    );
  });
});
