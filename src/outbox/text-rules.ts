/**
 * The rules on strings that every part of a message shares: the AMQP short
 * string limit, what PostgreSQL text and jsonb can hold, a UUID's form (message
 * and relay ids), and a string written as JSON text exactly as JSON.stringify
 * writes it.
 */

/** AMQP shortstr: exchange, routing key, property and header names. */
export const SHORT_STRING_BYTES = 255;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a UUID in its text form (what PostgreSQL's uuid type reads). */
export function isUuid(value: string): boolean {
  return UUID.test(value);
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
export function textProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (!isWellFormed(value))
    return 'must be well-formed Unicode (it holds a lone UTF-16 surrogate, which PostgreSQL would replace or reject)';
  return undefined;
}

// Exactly the characters JSON.stringify escapes: a string without them is
// written as is, which skips a native call for most strings.
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON escapes control characters
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON.stringify writes it. */
export function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
}
