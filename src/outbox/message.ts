/**
 * The message an application enqueues, and its validation and encoding into an
 * outbox row. Validation happens entirely before any SQL is sent, so a bad
 * message never aborts the caller's transaction.
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
  /** Any JSON-serializable value, or a Buffer / Uint8Array of raw bytes. */
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SHORT_STRING_BYTES = 255; // AMQP shortstr: exchange, routing key, property and header names
const HEADER_DEPTH = 16;

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
  if (value.includes('\u0000'))
    throw new InvalidMessageError(field, index, 'must not contain NUL characters');
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function checkHeaderValue(value: unknown, field: string, index: number, depth: number): void {
  if (depth > HEADER_DEPTH)
    throw new InvalidMessageError(field, index, `nests deeper than ${HEADER_DEPTH} levels`);
  switch (typeof value) {
    case 'string':
      if (value.includes('\u0000'))
        throw new InvalidMessageError(field, index, 'must not contain NUL characters');
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new InvalidMessageError(field, index, `must be a finite number, got ${value}`);
      return;
    case 'object': {
      if (value === null) return;
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          checkHeaderValue(item, `${field}[${i}]`, index, depth + 1);
        });
        return;
      }
      if (!isPlainObject(value)) {
        throw new InvalidMessageError(
          field,
          index,
          `must be a string, number, boolean, null, array or plain object, got ${typeName(value)}`,
        );
      }
      for (const [key, item] of Object.entries(value)) {
        checkHeaderName(key, `${field}.${key}`, index);
        checkHeaderValue(item, `${field}.${key}`, index, depth + 1);
      }
      return;
    }
    default:
      throw new InvalidMessageError(
        field,
        index,
        `must be a string, number, boolean, null, array or plain object, got ${typeName(value)}`,
      );
  }
}

function checkHeaderName(name: string, field: string, index: number): void {
  if (name === '') throw new InvalidMessageError(field, index, 'has an empty header name');
  if (Buffer.byteLength(name) > SHORT_STRING_BYTES) {
    throw new InvalidMessageError(
      field,
      index,
      `header name must be at most ${SHORT_STRING_BYTES} bytes`,
    );
  }
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

function encodeHeaders(
  headers: unknown,
  index: number,
  defaults: Readonly<Record<string, string>> | undefined,
): string {
  if (headers === undefined || headers === null) {
    return defaults ? JSON.stringify(defaults) : '{}';
  }
  if (!isPlainObject(headers)) {
    throw new InvalidMessageError(
      'headers',
      index,
      `must be a plain object, got ${typeName(headers)}`,
    );
  }
  for (const [key, value] of Object.entries(headers)) {
    checkHeaderName(key, `headers.${key}`, index);
    checkHeaderValue(value, `headers.${key}`, index, 1);
  }
  const json = JSON.stringify(defaults ? withDefaults(headers, defaults) : headers);
  // AMQP frames carry the whole header table in one 64 KiB encoding buffer.
  if (Buffer.byteLength(json) > 60 * 1024)
    throw new InvalidMessageError('headers', index, 'must encode to at most 60 KiB');
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
    let json: string | undefined;
    try {
      json = JSON.stringify(payload);
    } catch (error) {
      throw new InvalidMessageError(
        'payload',
        index,
        `is not JSON-serializable: ${describeError(error)}`,
      );
    }
    if (json === undefined) {
      throw new InvalidMessageError(
        'payload',
        index,
        `is not JSON-serializable (${typeName(payload)})`,
      );
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
  if (!isPlainObject(message) && (typeof message !== 'object' || message === null)) {
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
      `must be a UUID, got ${JSON.stringify(m.messageId) ?? typeName(m.messageId)}`,
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
    headers: encodeHeaders(m.headers, index, options.defaultHeaders),
  };
}
