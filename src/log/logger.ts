/**
 * The logging port and its pino adapter. The relay and the CLI log through
 * `Logger` only; this file is the one place that knows pino.
 *
 * Output is one JSON object per line on stderr (stdout is left to command
 * output), written synchronously so that nothing is lost when the process
 * exits. `pretty` formats the same records for a terminal.
 *
 * The codebase never logs payloads or message contents: it logs ids, counts,
 * tenants and errors. The redaction below is a second line of defence, not
 * the policy.
 *
 * pino-pretty (and its colour and date libraries) loads only when a `pretty`
 * logger is made: JSON logging, the default, never pays for it.
 */
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { type DestinationStream, pino } from 'pino';

/** Levels, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** `json` for log shippers, `pretty` for a person at a terminal. */
export type LogFormat = 'json' | 'pretty';

/** What the relay and the CLI log through. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Where log lines go; each `write` receives one complete line, newline included. */
export interface LogDestination {
  write(line: string): unknown;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lowest level written. */
  level: LogLevel;
  format: LogFormat;
  /** Fields added to every line, after `service`, `pid` and `hostname`. */
  base?: Record<string, unknown>;
  /** Defaults to stderr (fd 2), written synchronously. */
  destination?: LogDestination;
  /** Colours in `pretty` mode; defaults to whether stderr is a colour terminal. */
  colorize?: boolean;
}

/** Field names whose values are never written, at the top level or one level down. */
const SECRET_KEYS = ['payload', 'content', 'password', 'sdkKey'];
const REDACT_PATHS = SECRET_KEYS.flatMap((key) => [key, `*.${key}`]);

/** Properties of an error worth logging besides its type, message, stack and cause. */
const ERROR_PROPERTIES = ['code', 'kind', 'syscall', 'address', 'port'];
/** How many causes deep an error is followed (guards against cycles, too). */
const MAX_CAUSE_DEPTH = 5;

/**
 * The `user:password@` of a URL. The password runs to the last `@` of the
 * URL (an unencoded `@` in a password is common) and may hold JSON escapes
 * (`\"`), but never an unescaped `"` or whitespace: it can run on a
 * serialized JSON line without breaking it.
 */
const URL_CREDENTIALS =
  /([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"\\]*:)(?:[^\s"\\@]|\\.|@(?=(?:[^\s"\\@]|\\.)*@))*@/gi;

type PinoPretty = typeof import('pino-pretty');

let pinoPretty: PinoPretty | undefined;

/** pino-pretty, loaded on first use (a CommonJS module, so synchronously). */
function loadPinoPretty(): PinoPretty {
  pinoPretty ??= createRequire(import.meta.url)('pino-pretty') as PinoPretty;
  return pinoPretty;
}

/** Replaces the password of every URL in `text` with `***`. */
function scrubUrls(text: string): string {
  return text.includes('@') ? text.replace(URL_CREDENTIALS, '$1***@') : text;
}

/**
 * An error as a plain object: its type, message, code (and a few other plain
 * properties), its stack, and its cause chain (causes without stacks, to keep
 * a line readable). Other properties are left out on purpose: a database
 * error's `detail` can quote the whole failing row, payload included.
 */
function serializeError(error: Error, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: error.constructor?.name || error.name,
    message: error.message,
  };
  for (const key of ERROR_PROPERTIES) {
    const value: unknown = (error as unknown as Record<string, unknown>)[key];
    if (value !== undefined && value !== null && typeof value !== 'object') out[key] = value;
  }
  if (depth === 0 && error.stack) out.stack = error.stack;
  if (depth >= MAX_CAUSE_DEPTH) return out;
  if (error instanceof AggregateError && Array.isArray(error.errors)) {
    out.errors = error.errors.map((inner: unknown) => serializeCause(inner, depth + 1));
  }
  if (error.cause !== undefined) out.cause = serializeCause(error.cause, depth + 1);
  return out;
}

function serializeCause(cause: unknown, depth: number): unknown {
  if (cause instanceof Error) return serializeError(cause, depth);
  return String(cause);
}

/**
 * Serializes the errors among one record's fields, whatever their names
 * (`error`, `firstError`, …); copies the record only if there is one.
 */
function serializeErrors(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Error) {
      out ??= { ...fields };
      out[key] = serializeError(value);
    }
  }
  return out ?? fields;
}

/**
 * Where pino's JSON lines go: URL passwords are scrubbed from the whole line
 * (message, fields at any depth, error stacks), then it is written as is or
 * formatted for a person. All synchronous: pino-pretty's formatter is called
 * in-line, not run as a worker-thread transport.
 */
function lineWriter(target: LogDestination, pretty: boolean, colorize: boolean): LogDestination {
  const format = pretty
    ? loadPinoPretty().prettyFactory({
        colorize,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,service',
        singleLine: true,
      })
    : undefined;
  return {
    write: (line: string) => {
      const clean = scrubUrls(line);
      return target.write(format ? format(clean) : clean);
    },
  };
}

/** A logger writing `level` and above as JSON lines (or pretty text) to stderr or `destination`. */
export function createLogger(options: LoggerOptions): Logger {
  const target: LogDestination = options.destination ?? pino.destination({ fd: 2, sync: true });
  const pretty = options.format === 'pretty';
  const colorize = pretty && (options.colorize ?? (!options.destination && isStderrColour()));
  const stream = lineWriter(target, pretty, colorize);
  const instance = pino(
    {
      level: options.level,
      base: { service: 'outbox-relay', pid: process.pid, hostname: hostname(), ...options.base },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: serializeErrors,
      },
      redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    },
    stream as DestinationStream,
  );
  const emit = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) =>
    instance[level](fields ?? {}, message);
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

function isStderrColour(): boolean {
  return process.stderr.isTTY === true && loadPinoPretty().isColorSupported;
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
