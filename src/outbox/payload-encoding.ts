/**
 * A message's payload as the bytes stored in the row: raw bytes as they are,
 * or any other value as JSON text, checked in the same single walk that
 * writes it, so that JSON.parse gives back exactly what the application
 * passed or {@link encodePayload} throws an InvalidMessageError naming the
 * path (`payload.items[3].price`).
 */
import { describeError, InvalidMessageError } from '../errors.js';
import { jsonString } from './text-rules.js';
import { invalidAt, Unfaithful, under } from './unfaithful-value.js';
import { aClass, isBinary, isPlainObject } from './value-kinds.js';

/** Deepest nesting of arrays and objects in a JSON payload (serde_json's default limit). */
const MAX_PAYLOAD_DEPTH = 128;

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

/** The stored bytes of a payload, and the content type they have unless the message names one. */
export interface EncodedPayload {
  bytes: Buffer;
  defaultContentType: string;
}

/**
 * Encodes the payload of message `index`: a Buffer or Uint8Array as its
 * bytes, anything else as JSON text. Throws {@link InvalidMessageError} when
 * it is not faithful JSON or is over `maxPayloadBytes`.
 */
export function encodePayload(
  payload: unknown,
  index: number,
  maxPayloadBytes: number,
): EncodedPayload {
  let bytes: Buffer;
  let defaultContentType: string;
  if (payload instanceof Uint8Array) {
    bytes = Buffer.isBuffer(payload)
      ? payload
      : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    defaultContentType = 'application/octet-stream';
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
    defaultContentType = 'application/json';
  }
  if (bytes.byteLength > maxPayloadBytes) {
    throw new InvalidMessageError(
      'payload',
      index,
      `is ${bytes.byteLength} bytes, over the limit of ${maxPayloadBytes}`,
    );
  }
  return { bytes, defaultContentType };
}
