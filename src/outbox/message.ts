/**
 * The message an application enqueues, and its validation and encoding into an
 * outbox row. Validation happens entirely before any SQL is sent, so a bad
 * message never aborts the caller's transaction.
 *
 * The invariant: what the consumer receives is what the application passed,
 * or `enqueue` throws {@link InvalidMessageError} naming the field (for
 * nested values, its path: `payload.items[3].price`, `headers.x-tags[1]`).
 * Nothing is silently dropped, rounded or replaced. The payload and the
 * headers are each checked in the same single walk that writes their JSON, so
 * every value is read once and what was checked is what is stored.
 *
 * The payload is stored as bytes (bytea): JSON text of a JSON value, or raw
 * bytes. Headers go through jsonb and then an AMQP field table, so they must
 * also satisfy PostgreSQL (no NUL, no lone surrogates) and amqplib's encoder.
 */
import { randomUUID } from 'node:crypto';
import { describeError, InvalidMessageError } from '../errors.js';

/** A header value that survives the trip through JSONB into an AMQP field table. */
export type HeaderValue =
  | string
  | number
  | boolean
  | null
  | HeaderValue[]
  | { [key: string]: HeaderValue };

/** A message to publish, as the application hands it to `enqueue`. */
export interface OutboxMessage {
  /** The tenant (customer) the event belongs to; the unit of pausing and fairness. */
  tenantId: string;
  /** AMQP exchange; '' is the default exchange. */
  exchange: string;
  routingKey: string;
  /**
   * A JSON value (plain objects, arrays, strings, finite numbers, booleans,
   * null; a valid Date is written as its ISO string; object properties that
   * are undefined are left out, as JSON does), or a Buffer / Uint8Array of raw
   * bytes. Anything JSON would change or drop is rejected.
   */
  payload: unknown;
  /** AMQP `type` property, e.g. `order.created`. */
  type?: string;
  /** Defaults to `application/json` for JSON payloads and `application/octet-stream` for bytes. */
  contentType?: string;
  /** Application headers; JSON values only (AMQP field tables carry them). */
  headers?: Record<string, HeaderValue>;
  /** UUID consumers deduplicate on; generated when absent. */
  messageId?: string;
  /** Messages of one tenant with the same ordering key are published in order; defaults to the tenant. */
  orderingKey?: string;
}

/** One row ready for the INSERT, in column order. */
export interface EncodedMessage {
  messageId: string;
  tenantId: string;
  orderingKey: string | null;
  exchange: string;
  routingKey: string;
  messageType: string | null;
  payload: Buffer;
  contentType: string;
  headers: string;
}

/** Options of validation that come from the caller. */
export interface EncodeOptions {
  /** Largest payload accepted, in bytes. */
  maxPayloadBytes: number;
  /** Headers added to every message unless it sets them itself (the trace context). */
  defaultHeaders?: Readonly<Record<string, string>>;
}

/** Default largest payload: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Deepest nesting of arrays and objects in a JSON payload (serde_json's default limit). */
const MAX_PAYLOAD_DEPTH = 128;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHORT_STRING_BYTES = 255; // AMQP shortstr: exchange, routing key, property and header names
const HEADER_DEPTH = 16;
const HEADERS_JSON_BYTES = 60 * 1024;
// amqplib encodes the whole header table, with its 4-byte length, into one
// 64 KiB scratch buffer (SCRATCH in amqplib/lib/defs.js); a bigger table fails
// every publish of the row. The relay adds this header to every message.
const HEADER_TABLE_BYTES = 65_536;
const RELAY_TENANT_HEADER = 'x-tenant-id';
// amqplib sends an integral number, or any number of magnitude 2^50 or more
// below 2^63, as a signed 64-bit integer, and other numbers as doubles.
const AMQP_INTEGRAL_FROM = 2 ** 50;
const AMQP_INT64_LIMIT = 2 ** 63;

/** Why a nested value was rejected; its path is collected while the walk unwinds. */
class Unfaithful {
  /** Keys and indices from the value up to the root (innermost first). */
  readonly path: (string | number)[] = [];
  constructor(readonly reason: string) {}
}

/** Adds `key` to the path of an error thrown below it; any other error becomes one. */
function under(error: unknown, key: string | number): Unfaithful {
  const unfaithful =
    error instanceof Unfaithful ? error : new Unfaithful(`cannot be read: ${describeError(error)}`);
  unfaithful.path.push(key);
  return unfaithful;
}

/** The typed error for an {@link Unfaithful} found under `root`. */
function invalidAt(root: string, index: number, error: Unfaithful): InvalidMessageError {
  let field = root;
  for (let i = error.path.length - 1; i >= 0; i--) {
    const key = error.path[i];
    field += typeof key === 'number' ? `[${key}]` : `.${key}`;
  }
  return new InvalidMessageError(field, index, error.reason);
}

/** `String.prototype.isWellFormed` (ES2024, in Node 20; our lib setting is ES2023). */
function isWellFormed(value: string): boolean {
  return (value as unknown as { isWellFormed(): boolean }).isWellFormed();
}

/**
 * Why PostgreSQL text or jsonb cannot hold `value` as it is, if it cannot:
 * they reject NUL, and pg writes a lone UTF-16 surrogate as U+FFFD (text) or
 * jsonb rejects it.
 */
function textProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (!isWellFormed(value))
    return 'must be well-formed Unicode (it holds a lone UTF-16 surrogate, which PostgreSQL would replace or reject)';
  return undefined;
}

function shortString(
  value: unknown,
  field: string,
  index: number,
  options: { allowEmpty: boolean },
): string {
  if (typeof value !== 'string')
    throw new InvalidMessageError(field, index, `must be a string, got ${typeName(value)}`);
  if (!options.allowEmpty && value.trim() === '')
    throw new InvalidMessageError(field, index, 'must not be empty');
  if (Buffer.byteLength(value) > SHORT_STRING_BYTES) {
    throw new InvalidMessageError(field, index, `must be at most ${SHORT_STRING_BYTES} bytes`);
  }
  const problem = textProblem(value);
  if (problem) throw new InvalidMessageError(field, index, problem);
  return value;
}

function optionalShortString(value: unknown, field: string, index: number): string | null {
  if (value === undefined || value === null) return null;
  return shortString(value, field, index, { allowEmpty: false });
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Buffer.isBuffer(value)) return 'Buffer';
  return typeof value;
}

/** An object's class with its article ('a Map', 'an Order'), for messages. */
function aClass(value: object): string {
  const name: unknown = Object.getPrototypeOf(value)?.constructor?.name;
  if (typeof name !== 'string' || name === '') return 'an object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** An object literal, `Object.create(null)`, or an object literal from another realm. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || Object.getPrototypeOf(proto) === null;
}

/** Bytes, or typed data whose bytes would need a stated layout. */
function isBinary(value: object): boolean {
  return (
    ArrayBuffer.isView(value) ||
    value instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer)
  );
}

// Exactly the characters JSON.stringify escapes: a string without them is
// written as is, which skips a native call for most strings.
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON escapes control characters
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON.stringify writes it. */
function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}

/**
 * `value` as JSON text, exactly as JSON.stringify writes it, or an
 * {@link Unfaithful} if JSON.parse would not give it back: non-finite numbers,
 * BigInt, functions and symbols, undefined or a hole in an array, circular
 * structures, and objects that are not plain (class instances, Map, Set,
 * typed arrays, objects with their own toJSON, which is a function value).
 * An object property that is undefined is left out, as JSON does: it reads
 * back as undefined all the same. A valid Date is written as its ISO string.
 * Symbol-keyed and non-enumerable properties are not data and are not read.
 */
function payloadJson(value: unknown, ancestors: object[]): string {
  switch (typeof value) {
    case 'string':
      return jsonString(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new Unfaithful(`is ${value}, which JSON cannot represent (it would become null)`);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return payloadArrayJson(value, ancestors);
      if (isPlainObject(value)) return payloadObjectJson(value, ancestors);
      return otherObjectJson(value);
    case 'undefined':
      throw new Unfaithful('is undefined, which JSON cannot represent');
    default:
      throw new Unfaithful(`is a ${typeof value}, which JSON cannot represent`);
  }
}

/** Adds an array or object to the walk's ancestors, checking for cycles and depth. */
function enter(value: object, ancestors: object[]): void {
  if (ancestors.includes(value))
    throw new Unfaithful('refers back to an object that contains it (a circular structure)');
  if (ancestors.length >= MAX_PAYLOAD_DEPTH)
    throw new Unfaithful(`nests deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  ancestors.push(value);
}

function payloadArrayJson(array: unknown[], ancestors: object[]): string {
  enter(array, ancestors);
  let json = '[';
  for (let i = 0; i < array.length; i++) {
    try {
      const item = array[i];
      if (item === undefined) {
        throw new Unfaithful(
          i in array
            ? 'is undefined, which JSON would write as null'
            : 'is a hole in a sparse array, which JSON would write as null',
        );
      }
      if (i !== 0) json += ',';
      json += payloadJson(item, ancestors);
    } catch (error) {
      throw under(error, i);
    }
  }
  ancestors.pop();
  return `${json}]`;
}

function payloadObjectJson(object: Record<string, unknown>, ancestors: object[]): string {
  enter(object, ancestors);
  if (Object.getOwnPropertySymbols(object).length !== 0)
    throw new Unfaithful('has symbol-keyed properties, which JSON leaves out');
  let json = '{';
  for (const key of Object.keys(object)) {
    try {
      const item = object[key];
      if (item === undefined) continue;
      if (json.length !== 1) json += ',';
      json += `${jsonString(key)}:${payloadJson(item, ancestors)}`;
    } catch (error) {
      throw under(error, key);
    }
  }
  ancestors.pop();
  return `${json}}`;
}

/** A Date as its ISO string; any other object that is not plain is rejected. */
function otherObjectJson(value: object): string {
  if (value instanceof Date) {
    if (!Number.isFinite(value.getTime()))
      throw new Unfaithful('is an invalid Date, which JSON would write as null');
    return `"${value.toISOString()}"`;
  }
  const name = aClass(value);
  throw new Unfaithful(
    isBinary(value)
      ? `is ${name} inside a JSON payload, which JSON would not write as bytes (encode it, e.g. as base64, or send bytes as the whole payload)`
      : `is ${name}, not a plain object or array, which JSON would not give back (pass a plain object)`,
  );
}

/** Why `name` cannot be an AMQP field-table key stored in jsonb, if it cannot. */
function headerNameProblem(name: string, nested: boolean): string | undefined {
  if (name === '') return 'has an empty header name';
  // amqplib reads a nested object with a '!' key as a typed value ({'!': type,
  // value}), and the relay refuses it (src/broker/publishable.ts); in the
  // headers table itself the name is an ordinary key.
  if (nested && name === '!') return "header name '!' is read by amqplib as a type tag";
  if (Buffer.byteLength(name) > SHORT_STRING_BYTES)
    return `header name must be at most ${SHORT_STRING_BYTES} bytes`;
  const problem = textProblem(name);
  return problem ? `header name ${problem}` : undefined;
}

/** Bytes amqplib writes for number `n` (tag included); throws an Unfaithful if it cannot send it. */
function amqpNumberBytes(n: number): number {
  if (n >= AMQP_INT64_LIMIT || (Math.abs(n) < AMQP_INTEGRAL_FROM && !Number.isInteger(n))) {
    return 9; // double
  }
  if (!Number.isInteger(n)) {
    throw new Unfaithful(
      `is ${n}: amqplib sends a number this large as a 64-bit integer and cannot send its fraction (send it as a string)`,
    );
  }
  if (n < -AMQP_INT64_LIMIT)
    throw new Unfaithful(`is ${n}, below the smallest 64-bit integer amqplib can send`);
  if (n >= -0x80 && n < 0x80) return 2;
  if (n >= -0x8000 && n < 0x8000) return 3;
  if (n >= -0x80000000 && n < 0x80000000) return 5;
  return 9;
}

/** An AMQP field table's size as amqplib encodes it, summed during the header walk. */
interface TableSize {
  bytes: number;
}

/**
 * A header value as JSON text, adding its AMQP encoding's size to `size`; or
 * an {@link Unfaithful} if jsonb or the AMQP field table would not carry it
 * as it is. `depth` is 1 for a top-level header's value.
 */
function headerJson(value: unknown, depth: number, size: TableSize): string {
  if (depth > HEADER_DEPTH) throw new Unfaithful(`nests deeper than ${HEADER_DEPTH} levels`);
  switch (typeof value) {
    case 'string': {
      const problem = textProblem(value);
      if (problem) throw new Unfaithful(problem);
      size.bytes += 5 + Buffer.byteLength(value);
      return jsonString(value);
    }
    case 'boolean':
      size.bytes += 2;
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new Unfaithful(`must be a finite number, got ${value}`);
      size.bytes += amqpNumberBytes(value);
      return String(value);
    case 'object': {
      if (value === null) {
        size.bytes += 1;
        return 'null';
      }
      if (Array.isArray(value)) {
        size.bytes += 5;
        let json = '[';
        for (let i = 0; i < value.length; i++) {
          try {
            json += `${i === 0 ? '' : ','}${headerJson(value[i], depth + 1, size)}`;
          } catch (error) {
            throw under(error, i);
          }
        }
        return `${json}]`;
      }
      if (!isPlainObject(value)) break;
      if (Object.getOwnPropertySymbols(value).length !== 0)
        throw new Unfaithful('has symbol-keyed properties, which jsonb and AMQP leave out');
      size.bytes += 5;
      let json = '{';
      for (const key of Object.keys(value)) {
        try {
          const problem = headerNameProblem(key, true);
          if (problem) throw new Unfaithful(problem);
          size.bytes += 1 + Buffer.byteLength(key);
          json += `${json.length === 1 ? '' : ','}${jsonString(key)}:${headerJson(value[key], depth + 1, size)}`;
        } catch (error) {
          throw under(error, key);
        }
      }
      return `${json}}`;
    }
  }
  throw new Unfaithful(
    `must be a string, number, boolean, null, array or plain object, got ${typeName(value)}`,
  );
}

/**
 * Why RabbitMQ would not deliver header `name` as it is, if it would not: it
 * routes on `CC` and `BCC` (sender-selected distribution), closes the channel
 * when `CC` is not an array, and removes `BCC` before delivery.
 */
function routingHeaderProblem(name: string, value: unknown): string | undefined {
  if (name === 'BCC') return 'is removed by RabbitMQ before delivery (it routes on it)';
  if (name === 'CC' && !Array.isArray(value))
    return 'must be an array (of routing keys): RabbitMQ routes on it and closes the channel otherwise';
  return undefined;
}

/**
 * `headers` plus the defaults it does not set. Header names are compared
 * without case, and trace context travels whole: a message that sets
 * `traceparent` or `tracestate` in any case gets neither default.
 */
function withDefaults(
  headers: Record<string, unknown>,
  defaults: Readonly<Record<string, string>>,
): Record<string, unknown> {
  const own = new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  const ownTrace = own.has('traceparent') || own.has('tracestate');
  const added: Record<string, string> = {};
  for (const [name, value] of Object.entries(defaults)) {
    const lower = name.toLowerCase();
    if (own.has(lower)) continue;
    if (ownTrace && (lower === 'traceparent' || lower === 'tracestate')) continue;
    added[name] = value;
  }
  return { ...added, ...headers };
}

/**
 * The headers as jsonb text. Checks every value, and that the table the relay
 * publishes (these headers plus `x-tenant-id`) fits amqplib's encoder.
 */
function encodeHeaders(
  headers: unknown,
  tenantId: string,
  index: number,
  defaults: Readonly<Record<string, string>> | undefined,
): string {
  const own = headers === undefined || headers === null ? {} : headers;
  if (!isPlainObject(own)) {
    throw new InvalidMessageError('headers', index, `must be a plain object, got ${typeName(own)}`);
  }
  if (Object.getOwnPropertySymbols(own).length !== 0)
    throw new InvalidMessageError('headers', index, 'must not have symbol keys');
  const table = defaults ? withDefaults(own, defaults) : own;
  const size: TableSize = {
    bytes: 4 + 1 + RELAY_TENANT_HEADER.length + 5 + Buffer.byteLength(tenantId),
  };
  let json = '{';
  for (const name of Object.keys(table)) {
    try {
      const problem = headerNameProblem(name, false);
      if (problem) throw new Unfaithful(problem);
      const routing = routingHeaderProblem(name, table[name]);
      if (routing) throw new Unfaithful(routing);
      const before = size.bytes;
      size.bytes += 1 + Buffer.byteLength(name);
      json += `${json.length === 1 ? '' : ','}${jsonString(name)}:${headerJson(table[name], 1, size)}`;
      // The relay replaces this header: it was counted once, above.
      if (name === RELAY_TENANT_HEADER) size.bytes = before;
    } catch (error) {
      throw invalidAt('headers', index, under(error, name));
    }
  }
  json += '}';
  if (Buffer.byteLength(json) > HEADERS_JSON_BYTES)
    throw new InvalidMessageError('headers', index, 'must encode to at most 60 KiB as JSON');
  if (size.bytes > HEADER_TABLE_BYTES) {
    throw new InvalidMessageError(
      'headers',
      index,
      `must encode to an AMQP field table of at most ${HEADER_TABLE_BYTES} bytes with the relay's ${RELAY_TENANT_HEADER}, got ${size.bytes}`,
    );
  }
  return json;
}

function encodePayload(
  payload: unknown,
  contentType: unknown,
  index: number,
  options: EncodeOptions,
): { bytes: Buffer; contentType: string } {
  let bytes: Buffer;
  let defaultType: string;
  if (payload instanceof Uint8Array) {
    bytes = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    defaultType = 'application/octet-stream';
  } else {
    // Other binary data is rejected rather than guessed at: a typed array's
    // bytes depend on the platform's byte order, and a Buffer's ArrayBuffer
    // is often a pool shared with unrelated data.
    if (typeof payload === 'object' && payload !== null && isBinary(payload)) {
      throw new InvalidMessageError(
        'payload',
        index,
        `is ${aClass(payload)}; pass raw bytes as a Buffer or Uint8Array (e.g. new Uint8Array(view.buffer, view.byteOffset, view.byteLength))`,
      );
    }
    let json: string;
    try {
      json = payloadJson(payload, []);
    } catch (error) {
      if (error instanceof Unfaithful) throw invalidAt('payload', index, error);
      throw new InvalidMessageError('payload', index, `cannot be read: ${describeError(error)}`);
    }
    bytes = Buffer.from(json, 'utf8');
    defaultType = 'application/json';
  }
  if (bytes.byteLength > options.maxPayloadBytes) {
    throw new InvalidMessageError(
      'payload',
      index,
      `is ${bytes.byteLength} bytes, over the limit of ${options.maxPayloadBytes}`,
    );
  }
  const type =
    contentType === undefined || contentType === null
      ? defaultType
      : shortString(contentType, 'contentType', index, { allowEmpty: false });
  return { bytes, contentType: type };
}

/**
 * Validates one message and encodes it as an outbox row. Throws
 * {@link InvalidMessageError} naming the field.
 */
export function encodeMessage(
  message: unknown,
  index: number,
  options: EncodeOptions,
): EncodedMessage {
  if (typeof message !== 'object' || message === null) {
    throw new InvalidMessageError('message', index, `must be an object, got ${typeName(message)}`);
  }
  const m = message as Record<string, unknown>;
  if (m.tenantId === undefined || m.tenantId === null)
    throw new InvalidMessageError('tenantId', index, 'is required');
  const tenantId = shortString(m.tenantId, 'tenantId', index, { allowEmpty: false });
  if (m.exchange === undefined || m.exchange === null)
    throw new InvalidMessageError('exchange', index, 'is required');
  const exchange = shortString(m.exchange, 'exchange', index, { allowEmpty: true });
  if (m.routingKey === undefined || m.routingKey === null) {
    throw new InvalidMessageError('routingKey', index, 'is required');
  }
  const routingKey = shortString(m.routingKey, 'routingKey', index, { allowEmpty: true });
  if (!('payload' in m)) throw new InvalidMessageError('payload', index, 'is required');
  const { bytes, contentType } = encodePayload(m.payload, m.contentType, index, options);
  const messageType = optionalShortString(m.type, 'type', index);
  const orderingKey = optionalShortString(m.orderingKey, 'orderingKey', index);
  let messageId: string;
  if (m.messageId === undefined || m.messageId === null) {
    messageId = randomUUID();
  } else if (typeof m.messageId !== 'string' || !UUID.test(m.messageId)) {
    throw new InvalidMessageError(
      'messageId',
      index,
      `must be a UUID, got ${typeof m.messageId === 'string' ? JSON.stringify(m.messageId) : typeName(m.messageId)}`,
    );
  } else {
    messageId = m.messageId.toLowerCase();
  }
  return {
    messageId,
    tenantId,
    orderingKey,
    exchange,
    routingKey,
    messageType,
    payload: bytes,
    contentType,
    headers: encodeHeaders(m.headers, tenantId, index, options.defaultHeaders),
  };
}
