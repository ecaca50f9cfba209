/**
 * A message's headers as the jsonb text stored in the row. They travel
 * through jsonb and then an AMQP field table, so each value is checked, in
 * the same single walk that writes its JSON, against PostgreSQL (no NUL, no
 * lone surrogates), amqplib's encoder (numbers it can send, a table that fits
 * its 64 KiB buffer) and RabbitMQ's routing headers. A value that would not
 * arrive as it was sent makes {@link encodeHeaders} throw an
 * InvalidMessageError naming its path (`headers.x-tags[1]`).
 */
import { InvalidMessageError } from '../errors.js';
import { jsonString, SHORT_STRING_BYTES, textProblem } from './text-rules.js';
import { invalidAt, Unfaithful, under } from './unfaithful-value.js';
import { isPlainObject, typeName } from './value-kinds.js';

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
 * The headers of message `index` (plus the `defaults` they do not set) as
 * jsonb text. Checks every value, and that the table the relay publishes
 * (these headers plus `x-tenant-id`) fits amqplib's encoder.
 */
export function encodeHeaders(
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
