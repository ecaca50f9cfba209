/**
 * Hides the password of a connection URL before it reaches an error message
 * or a log line. A module of its own at the bottom of the import graph: the
 * settings parser, the pg pool, the AMQP publisher and the Redis flag store
 * all need it, and none of them should depend on another for it.
 */

/** Replaces the password of a URL with `***`, for messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const parsed = new URL(raw);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // As a URL parser would: the password runs to the last '@'.
    return raw.replace(/\/\/([^:/@]+):.*@/, '//$1:***@');
  }
}
