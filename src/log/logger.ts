/**
 * The logging port: one JSON object per line on stderr, with a level filter.
 * Payloads are never logged.
 */

/** Levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** What the relay and the CLI log through. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** A logger writing JSON lines to `write` (stderr by default) at `level` and above. */
export function createJsonLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const emit = (at: LogLevel, message: string, fields?: Record<string, unknown>) => {
    if (RANK[at] < RANK[level]) return;
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      level: at,
      msg: message,
      ...base,
    };
    for (const [key, value] of Object.entries(fields ?? {})) {
      entry[key] =
        value instanceof Error
          ? { message: value.message, code: (value as { code?: unknown }).code }
          : value;
    }
    write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
