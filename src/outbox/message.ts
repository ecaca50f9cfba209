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
 * bytes (payload-encoding.ts). Headers go through jsonb and then an AMQP field
 * table, so they must also satisfy PostgreSQL (no NUL, no lone surrogates) and
 * amqplib's encoder (header-encoding.ts). This file checks the message's own
 * fields and puts the row together.
 */
import { randomUUID } from 'node:crypto';
import { InvalidMessageError } from '../errors.js';
import { encodeHeaders } from './header-encoding.js';
import { encodePayload } from './payload-encoding.js';
import { isUuid, SHORT_STRING_BYTES, textProblem } from './text-rules.js';
import { typeName } from './value-kinds.js';

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

/** A field AMQP carries as a short string (exchange, routing key, type…), checked for the row. */
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
  const { bytes, defaultContentType } = encodePayload(m.payload, index, options.maxPayloadBytes);
  const contentType =
    m.contentType === undefined || m.contentType === null
      ? defaultContentType
      : shortString(m.contentType, 'contentType', index, { allowEmpty: false });
  const messageType = optionalShortString(m.type, 'type', index);
  const orderingKey = optionalShortString(m.orderingKey, 'orderingKey', index);
  let messageId: string;
  if (m.messageId === undefined || m.messageId === null) {
    messageId = randomUUID();
  } else if (typeof m.messageId !== 'string' || !isUuid(m.messageId)) {
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
