/**
 * Values for the fuzz suite and the oracle that judges them.
 *
 * Arbitraries: strings chosen for how they break things (multibyte, astral,
 * joiners, controls, NUL, lone surrogates, spaces that trim() removes) at
 * sizes around the 255-byte limits; header values inside and outside the
 * documented contract; payloads of every JavaScript kind.
 *
 * Oracle: what a consumer must receive for a value, or why the value cannot
 * travel unchanged. Kept in one place so a policy decision (say, that a Date
 * travels as its ISO string) is one line here, not scattered through tests.
 */
import fc from 'fast-check';

/** AMQP short strings and the table's text CHECK constraints: at most 255 bytes. */
export const SHORT_STRING_BYTES = 255;
/** Documented header limits (docs/sql-contract.md). */
export const HEADER_DEPTH = 16;
export const HEADERS_JSON_BYTES = 60 * 1024;
/** amqplib encodes a header table into one 64 KiB scratch buffer. */
const AMQP_TABLE_BYTES = 65_536;

/** Characters that break naive code: multibyte, astral, combining, bidi, BOM, controls, quotes, spaces trim() removes. */
const TRICKY = [
  'é',
  'あ',
  '😀',
  '👩‍👩‍👧',
  '\u0301',
  '\u202e',
  '\ufeff',
  '\u200b',
  '\u00a0',
  '\u3000',
  '\t',
  '\n',
  '\r',
  '\u0001',
  '\u001f',
  '\u007f',
  '"',
  '\\',
  "'",
  '.',
  '#',
  '*',
  ' ',
  '!',
  '%',
];
/** Characters no text column or jsonb value can hold as they are. */
const UNSTORABLE = ['\u0000', '\ud800', '\udfff', '\udc00\ud800'];

const trickyUnit = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'z', '0', '-', '_'), weight: 6 },
  { arbitrary: fc.constantFrom(...TRICKY), weight: 4 },
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), weight: 2 },
);

/** Text of up to `maxLength` units; `unstorable` also mixes in NUL and lone surrogates (rarely). */
export function text(options: { minLength?: number; maxLength: number; unstorable?: boolean }) {
  const unit = options.unstorable
    ? fc.oneof(
        { arbitrary: trickyUnit, weight: 30 },
        { arbitrary: fc.constantFrom(...UNSTORABLE), weight: 1 },
      )
    : trickyUnit;
  return fc.string({ unit, minLength: options.minLength ?? 0, maxLength: options.maxLength });
}

/** Whether a text column or jsonb can hold `value` as it is (no NUL, no lone surrogate). */
export function storable(value: string): boolean {
  return !value.includes('\u0000') && isWellFormed(value);
}

/** A string of exactly `bytes` UTF-8 bytes (or one fewer), made of `char` padded with 'a'. */
export function stringOfBytes(bytes: number, char: string): string {
  const size = Buffer.byteLength(char);
  const body = char.repeat(Math.floor(bytes / size));
  return body + 'a'.repeat(bytes - Buffer.byteLength(body));
}

/** Strings of sizes at and around `limit` bytes, of 1- to 4-byte characters. */
export function aroundLimit(limit: number = SHORT_STRING_BYTES) {
  return fc
    .tuple(
      fc.oneof(
        fc.constantFrom(limit - 1, limit, limit + 1, limit + 2, limit * 2),
        fc.integer({ min: limit - 8, max: limit + 8 }),
      ),
      fc.constantFrom('a', 'é', 'あ', '😀', ' x', '.'),
    )
    .map(([bytes, char]) => stringOfBytes(Math.max(0, bytes), char));
}

/** Numbers at the edges of JSON, doubles and amqplib's integer encodings. */
export const edgeNumbers = fc.constantFrom(
  0,
  -0,
  1,
  -1,
  127,
  128,
  -128,
  -129,
  32_767,
  -32_769,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 50,
  2 ** 50 + 0.5,
  -(2 ** 50) - 0.5,
  2 ** 53 + 2,
  -(2 ** 53) - 2,
  2 ** 63,
  -(2 ** 63),
  -(2 ** 63) - 4096,
  1e20,
  -1e20,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  0.1,
  1.5,
  -2.5e-300,
);

/** Header names: ordinary, tricky, names RabbitMQ or amqplib treat specially, and names at 255 bytes. */
export const headerName = fc.oneof(
  { arbitrary: fc.constantFrom('source', 'version', 'a', 'A', 'x-count', '0'), weight: 8 },
  { arbitrary: text({ minLength: 1, maxLength: 12 }), weight: 6 },
  {
    arbitrary: fc.constantFrom(
      '!',
      'value',
      'CC',
      'BCC',
      'cc',
      'x-tenant-id',
      'X-Tenant-Id',
      'x-death',
      'x-delay',
      'x-match',
      'traceparent',
      'tracestate',
      'toString',
      'constructor',
      'hasOwnProperty',
      ' ',
    ),
    weight: 2,
  },
  { arbitrary: aroundLimit(), weight: 1 },
  { arbitrary: text({ minLength: 0, maxLength: 3, unstorable: true }), weight: 1 },
);

/** Header values inside the documented contract (strings, finite numbers, booleans, null, arrays, objects). */
export const contractHeaderValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true, maxDepth: 6 },
    text({ maxLength: 24, unstorable: true }),
    edgeNumbers,
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(headerName, tie('value'), { maxKeys: 4, noNullPrototype: false }),
  ),
})).value;

/** Values amqplib reads as type tags (`{'!': type, value}`): legal JSON, surprising on the wire. */
export const typeTagValue = fc.oneof(
  fc.record({ '!': fc.constantFrom('timestamp', 'decimal', 'int8', 'float', 'string', 'nope') }),
  fc.record({
    '!': fc.constantFrom('timestamp', 'int8', 'float', 'string', 'nope'),
    value: fc.oneof(fc.integer({ min: -5, max: 300 }), fc.string({ maxLength: 3 })),
  }),
);

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

/** A fresh object that contains itself. */
function circularObject(): unknown {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

function sparse(): unknown[] {
  const holes: unknown[] = [1];
  holes[3] = 2;
  return holes;
}

/**
 * JavaScript values that are not JSON: each must be rejected, or travel in a
 * form its own contract defines (a Date's toJSON). Built fresh at each use.
 */
export const exoticValues: Record<string, () => unknown> = {
  NaN: () => Number.NaN,
  Infinity: () => Number.POSITIVE_INFINITY,
  '-Infinity': () => Number.NEGATIVE_INFINITY,
  bigint: () => 12_345_678_901_234_567_890n,
  undefined: () => undefined,
  function: () => () => 1,
  symbol: () => Symbol('s'),
  date: () => new Date(86_400_000),
  'invalid date': () => new Date(Number.NaN),
  buffer: () => Buffer.from('hi'),
  uint8array: () => new Uint8Array([1, 2, 3]),
  'uint8array view': () => new Uint8Array(new Uint8Array([9, 8, 7, 6, 5]).buffer, 1, 3),
  uint8clampedarray: () => new Uint8ClampedArray([1, 2]),
  int16array: () => new Int16Array([-1, 2]),
  float64array: () => new Float64Array([0.5]),
  arraybuffer: () => new Uint8Array([1, 2]).buffer,
  dataview: () => new DataView(new Uint8Array([1, 2]).buffer),
  map: () => new Map([['a', 1]]),
  set: () => new Set([1, 2]),
  'sparse array': sparse,
  'array with undefined': () => [1, undefined],
  'class instance': () => new Point(1, 2),
  regexp: () => /x/g,
  error: () => new Error('boom'),
  'boxed number': () => Object(5),
  'boxed string': () => Object('s'),
  circular: circularObject,
  'circular array': () => {
    const value: unknown[] = [1];
    value.push(value);
    return value;
  },
  'symbol key': () => ({ a: 1, [Symbol('k')]: 2 }),
  'undefined property': () => ({ a: 1, b: undefined }),
  'function property': () => ({ a: 1, f: () => 2 }),
  'null prototype': () => Object.assign(Object.create(null), { a: 1 }),
  'own __proto__': () => JSON.parse('{"__proto__": {"x": 1}, "a": 2}'),
  'toJSON object': () => ({ toJSON: () => ({ replaced: true }) }),
};

/** The name of an exotic value; built with {@link exotic}. */
export type ExoticName = keyof typeof exoticValues;

/** Names of the exotic values, as an arbitrary (a name prints well in a counterexample). */
export const exoticName = fc.constantFrom(...Object.keys(exoticValues));

/** Builds the exotic value `name`. */
export function exotic(name: string): unknown {
  const make = exoticValues[name];
  if (!make) throw new Error(`no exotic value '${name}'`);
  return make();
}

// ---------------------------------------------------------------------------
// The oracle

/** How faithfully a value can travel as JSON. */
export type Fidelity =
  /** JSON carries it exactly. */
  | 'exact'
  /** It travels in a form it defines itself (toJSON, a boxed primitive, an undefined property left out): accept or reject. */
  | 'lenient'
  /** JSON would change or drop something, or cannot encode it: must be rejected. */
  | 'lossy';

/** What JSON makes of a value: the value a consumer parses, and how faithful that is. */
export interface JsonView {
  fidelity: Fidelity;
  /** Why it is not exact. */
  reason?: string;
  /** What the consumer's JSON.parse must return (when not lossy). */
  model?: unknown;
}

class Walk {
  fidelity: Fidelity = 'exact';
  reason: string | undefined;
  private readonly stack = new Set<object>();

  lower(to: Fidelity, reason: string): void {
    const rank = { exact: 0, lenient: 1, lossy: 2 };
    if (rank[to] > rank[this.fidelity]) {
      this.fidelity = to;
      this.reason = reason;
    }
  }

  value(value: unknown, where: string): unknown {
    switch (typeof value) {
      case 'string':
      case 'boolean':
        return value;
      case 'number':
        if (!Number.isFinite(value)) this.lower('lossy', `${where} is ${value}`);
        return value;
      case 'bigint':
        this.lower('lossy', `${where} is a BigInt`);
        return undefined;
      case 'undefined':
      case 'function':
      case 'symbol':
        this.lower('lossy', `${where} is ${typeof value}`);
        return undefined;
      default:
        return value === null ? null : this.object(value as object, where);
    }
  }

  private object(value: object, where: string): unknown {
    if (this.stack.has(value)) {
      this.lower('lossy', `${where} is circular`);
      return undefined;
    }
    this.stack.add(value);
    try {
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        this.lower('lenient', `${where} has toJSON`);
        return this.value(toJSON.call(value, ''), where);
      }
      if (value instanceof Number || value instanceof String || value instanceof Boolean) {
        this.lower('lenient', `${where} is a boxed primitive`);
        return this.value(value.valueOf(), where);
      }
      if (Array.isArray(value)) return this.array(value, where);
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        const name = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object';
        this.lower('lossy', `${where} is a ${name}`);
        return undefined;
      }
      if (Object.getOwnPropertySymbols(value).length > 0) {
        this.lower('lossy', `${where} has symbol keys`);
      }
      const model: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        if (item === undefined) {
          this.lower('lenient', `${where}.${key} is undefined (left out)`);
          continue;
        }
        // defineProperty: a key named __proto__ stays an own property, as JSON.parse makes it.
        Object.defineProperty(model, key, {
          value: this.value(item, `${where}.${key}`),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return model;
    } finally {
      this.stack.delete(value);
    }
  }

  private array(value: unknown[], where: string): unknown[] {
    const model: unknown[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) {
        this.lower('lossy', `${where}[${i}] is a hole`);
        model.push(null);
        continue;
      }
      model.push(this.value(value[i], `${where}[${i}]`));
    }
    return model;
  }
}

/** What JSON makes of `value` (a payload that is not bytes). */
export function jsonView(value: unknown, where = 'payload'): JsonView {
  const walk = new Walk();
  const model = walk.value(value, where);
  return {
    fidelity: walk.fidelity,
    ...(walk.reason === undefined ? {} : { reason: walk.reason }),
    ...(walk.fidelity === 'lossy' ? {} : { model }),
  };
}

/** Deep equality of parsed JSON or decoded AMQP values: numbers by ===, objects by own keys, in any order. */
export function sameData(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b))
    return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  return keysA.every(
    (key) =>
      Object.hasOwn(b, key) &&
      sameData((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
  );
}

/** Bytes of a value as amqplib encodes it in a field table (for the 64 KiB table limit). */
export function amqpValueBytes(value: unknown): number {
  if (typeof value === 'string') return 5 + Buffer.byteLength(value);
  if (typeof value === 'boolean') return 2;
  if (typeof value === 'number') {
    const floating = value >= 2 ** 63 || (Math.abs(value) < 2 ** 50 && Math.floor(value) !== value);
    if (floating) return 9;
    if (value >= -128 && value < 128) return 2;
    if (value >= -0x8000 && value < 0x8000) return 3;
    if (value >= -0x80000000 && value < 0x80000000) return 5;
    return 9;
  }
  if (value === null || typeof value !== 'object') return 1;
  if (Array.isArray(value)) return 5 + value.reduce<number>((n, v) => n + amqpValueBytes(v), 0);
  return 1 + amqpTableBytes(value as Record<string, unknown>);
}

/** Bytes of a header table as amqplib encodes it. */
export function amqpTableBytes(table: Record<string, unknown>): number {
  let bytes = 4;
  for (const [key, value] of Object.entries(table)) {
    bytes += 1 + Buffer.byteLength(key) + amqpValueBytes(value);
  }
  return bytes;
}

/** The outcome a header set allows: valid, invalid, or either (the contract and the wire disagree). */
export type Verdict = 'valid' | 'invalid' | 'either';

/** A verdict with the reason for it. */
export interface Judgement {
  verdict: Verdict;
  reason?: string;
}

function worse(a: Judgement, b: Judgement): Judgement {
  const rank = { valid: 0, either: 1, invalid: 2 };
  return rank[b.verdict] > rank[a.verdict] ? b : a;
}

function isWellFormed(value: string): boolean {
  return (value as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/** Judges a string that goes into a text column or jsonb. */
export function judgeText(value: string, where: string): Judgement {
  if (value.includes('\u0000')) return { verdict: 'invalid', reason: `${where} holds NUL` };
  if (!isWellFormed(value)) return { verdict: 'either', reason: `${where} holds a lone surrogate` };
  return { verdict: 'valid' };
}

/**
 * Judges the headers an application passes to `enqueue`, by
 * docs/sql-contract.md; where RabbitMQ or amqplib cannot carry what the
 * contract allows (a number below -2^63, a `!` key, CC/BCC, a table over
 * 64 KiB), the verdict is 'either': rejecting is right, and so is delivering
 * it unchanged, which today nothing can.
 */
export function judgeHeaders(headers: unknown, tenantId: string): Judgement {
  if (headers === undefined || headers === null) return { verdict: 'valid' };
  if (
    typeof headers !== 'object' ||
    Array.isArray(headers) ||
    ![Object.prototype, null].includes(Object.getPrototypeOf(headers))
  ) {
    return { verdict: 'invalid', reason: 'headers is not a plain object' };
  }
  let judgement: Judgement = { verdict: 'valid' };
  const entries = Object.entries(headers);
  if (Object.getOwnPropertySymbols(headers).length > 0)
    judgement = worse(judgement, { verdict: 'invalid', reason: 'headers has symbol keys' });
  for (const [key, value] of entries) {
    judgement = worse(judgement, judgeHeaderName(key, `headers.${key}`));
    judgement = worse(judgement, judgeHeaderValue(value, `headers.${key}`, 1));
    if ((key === 'CC' || key === 'BCC') && (key === 'BCC' || !Array.isArray(value))) {
      judgement = worse(judgement, {
        verdict: 'either',
        reason: `RabbitMQ routes on ${key} (it refuses a non-array and strips BCC)`,
      });
    }
  }
  if (judgement.verdict === 'invalid') return judgement;
  const json = JSON.stringify(headers);
  if (Buffer.byteLength(json) > HEADERS_JSON_BYTES)
    return { verdict: 'invalid', reason: `headers are ${Buffer.byteLength(json)} bytes of JSON` };
  const table = amqpTableBytes({ ...(JSON.parse(json) as object), 'x-tenant-id': tenantId });
  if (table > AMQP_TABLE_BYTES - 256) {
    judgement = worse(judgement, {
      verdict: 'either',
      reason: `the AMQP header table is about ${table} bytes`,
    });
  }
  return judgement;
}

function judgeHeaderName(name: string, where: string): Judgement {
  if (name === '') return { verdict: 'invalid', reason: `${where}: empty header name` };
  if (Buffer.byteLength(name) > SHORT_STRING_BYTES)
    return { verdict: 'invalid', reason: `${where}: header name over 255 bytes` };
  const stored = judgeText(name, where);
  // A NUL in a name: the contract is silent, and jsonb cannot hold it.
  return stored.verdict === 'invalid' ? { ...stored, verdict: 'either' } : stored;
}

function judgeHeaderValue(value: unknown, where: string, depth: number): Judgement {
  if (depth > HEADER_DEPTH)
    return { verdict: 'invalid', reason: `${where} nests deeper than ${HEADER_DEPTH}` };
  switch (typeof value) {
    case 'string':
      return judgeText(value, where);
    case 'boolean':
      return { verdict: 'valid' };
    case 'number':
      if (!Number.isFinite(value)) return { verdict: 'invalid', reason: `${where} is ${value}` };
      if (value < -(2 ** 63))
        return { verdict: 'either', reason: `${where} is below -2^63 (amqplib cannot encode it)` };
      // amqplib sends |n| in [2^50, 2^63) as a 64-bit integer: a fraction there cannot be encoded.
      if (Math.abs(value) >= 2 ** 50 && value < 2 ** 63 && !Number.isInteger(value))
        return { verdict: 'either', reason: `${where} has a fraction at or above 2^50` };
      return { verdict: 'valid' };
    case 'undefined':
      return { verdict: 'either', reason: `${where} is undefined` };
    case 'object': {
      if (value === null) return { verdict: 'valid' };
      let judgement: Judgement = { verdict: 'valid' };
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          judgement = worse(
            judgement,
            i in value
              ? judgeHeaderValue(value[i], `${where}[${i}]`, depth + 1)
              : { verdict: 'invalid', reason: `${where}[${i}] is a hole` },
          );
        }
        return judgement;
      }
      if (![Object.prototype, null].includes(Object.getPrototypeOf(value)))
        return { verdict: 'invalid', reason: `${where} is not a plain object` };
      if (Object.getOwnPropertySymbols(value).length > 0)
        judgement = worse(judgement, { verdict: 'invalid', reason: `${where} has symbol keys` });
      if (Object.hasOwn(value, '!'))
        judgement = worse(judgement, {
          verdict: 'either',
          reason: `${where} has a '!' key (amqplib reads a type tag)`,
        });
      for (const [key, item] of Object.entries(value)) {
        judgement = worse(judgement, judgeHeaderName(key, `${where}.${key}`));
        judgement = worse(judgement, judgeHeaderValue(item, `${where}.${key}`, depth + 1));
      }
      return judgement;
    }
    default:
      return { verdict: 'invalid', reason: `${where} is a ${typeof value}` };
  }
}

/** A header set whose JSON is about `jsonBytes` long, of one repeated item: compact in JSON, not in AMQP. */
export function bigHeaders(
  item: 'zero' | 'half' | 'null' | 'empty array' | 'text',
  jsonBytes: number,
) {
  const values = { zero: 0, half: 0.5, null: null, 'empty array': [], text: 'xxxxxxxxxx' };
  const one = values[item];
  const each = Buffer.byteLength(JSON.stringify(one)) + 1;
  const count = Math.max(0, Math.floor((jsonBytes - 9) / each));
  return { big: Array.from({ length: count }, () => (Array.isArray(one) ? [] : one)) };
}
