/**
 * What AMQP 0-9-1, amqplib or RabbitMQ cannot take, found before a message is
 * written to a channel. Rows inserted with plain SQL can hold anything jsonb
 * keeps; sending such a row would fail late and hurt others:
 * - a header number that is not finite: +Infinity encodes as a double that
 *   RabbitMQ cannot decode, and it closes the whole connection (541), under
 *   every message of every tenant on it;
 * - a header object with a `!` key: amqplib reads it as a type tag
 *   (`{"!": "timestamp", "value": 5}` is sent as a timestamp), so the consumer
 *   would receive something else than was written;
 * - a negative integer below -2^63, a header key over 255 bytes, headers
 *   nested deeper than {@link MAX_HEADER_DEPTH}: amqplib cannot encode them;
 * - a body over the broker's `max_message_size`, or a `CC`/`BCC` header that
 *   is not an array (sender-selected distribution; RabbitMQ 3.10 refuses even
 *   a string): RabbitMQ closes the channel (406) under every message on it.
 * Such a row can never be published, so it goes dead at once with the reason.
 */
import { SHORT_STRING_BYTES } from '../outbox/text-rules.js';
import type { OutgoingMessage } from '../relay/publisher.js';

/** RabbitMQ's default `max_message_size` (128 MiB). */
export const RABBITMQ_DEFAULT_MAX_MESSAGE_BYTES = 134_217_728;

/** Deepest nesting of header tables and arrays sent (amqplib encodes recursively). */
export const MAX_HEADER_DEPTH = 64;

/** Smallest integer amqplib encodes (as a signed 64-bit long). */
const MIN_LONG = -(2 ** 63);

function describePath(path: string): string {
  return path === '' ? 'headers' : `header '${path}'`;
}

function checkValue(value: unknown, path: string, depth: number): string | undefined {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      return `${describePath(path)} is ${value}, which AMQP cannot carry`;
    }
    if (value < MIN_LONG) {
      return `${describePath(path)} is ${value}, below the smallest AMQP integer (-2^63)`;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > MAX_HEADER_DEPTH) {
    return `${describePath(path)} nests deeper than ${MAX_HEADER_DEPTH} levels`;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = checkValue(value[i], `${path}[${i}]`, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  if (Buffer.isBuffer(value)) return undefined;
  // Only nested tables: amqplib reads a '!' key as a type tag in a value, not in the headers table itself.
  if (path !== '' && Object.hasOwn(value, '!')) {
    return `${describePath(path)} has a '!' key, which the AMQP client reads as a type tag`;
  }
  for (const [key, inner] of Object.entries(value)) {
    const innerPath = path === '' ? key : `${path}.${key}`;
    if (Buffer.byteLength(key) > SHORT_STRING_BYTES) {
      return `${describePath(innerPath.slice(0, 64))}… has a key over ${SHORT_STRING_BYTES} bytes`;
    }
    const problem = checkValue(inner, innerPath, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Why `message` can never be published, or undefined if it can be tried.
 * Cheap: one walk of the headers, no encoding.
 */
export function unpublishableReason(
  message: OutgoingMessage,
  maxMessageBytes: number,
): string | undefined {
  if (message.content.length > maxMessageBytes) {
    return `the body is ${message.content.length} bytes, over the ${maxMessageBytes}-byte limit (OUTBOX_MAX_MESSAGE_BYTES, the broker's max_message_size)`;
  }
  for (const name of ['CC', 'BCC']) {
    const routes = message.headers[name];
    if (routes !== undefined && !Array.isArray(routes)) {
      return `header '${name}' must be an array of routing keys (RabbitMQ routes on it and closes the channel otherwise)`;
    }
  }
  return checkValue(message.headers, '', 0);
}
