/**
 * What kind of JavaScript value the encoders are looking at, and how an error
 * names it: a plain object (the only object JSON gives back), binary data
 * (whose bytes need a stated layout), or anything else.
 */

/** A value's kind as an error message names it ('null', 'array', 'Buffer', 'object', …). */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Buffer.isBuffer(value)) return 'Buffer';
  return typeof value;
}

/** An object's class with its article ('a Map', 'an Order'), for messages. */
export function aClass(value: object): string {
  const name: unknown = Object.getPrototypeOf(value)?.constructor?.name;
  if (typeof name !== 'string' || name === '') return 'an object';
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

/** An object literal, `Object.create(null)`, or an object literal from another realm. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || Object.getPrototypeOf(proto) === null;
}

/** Bytes, or typed data whose bytes would need a stated layout. */
export function isBinary(value: object): boolean {
  return (
    ArrayBuffer.isView(value) ||
    value instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer === 'function' && value instanceof SharedArrayBuffer)
  );
}
