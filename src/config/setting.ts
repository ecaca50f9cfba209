/**
 * One setting: the shape of a row of the settings table (src/config.ts puts
 * the rows together) and the parsers its value may use. Each parser takes the
 * raw text and the name it came under (variable or flag), and throws a
 * ConfigError naming it.
 */
import { ConfigError } from '../errors.js';
import { redactUrl } from '../redact-url.js';
import { SCHEMA_NAME } from '../schema-name.js';

/** Which commands a setting applies to. */
export type SettingScope = 'database' | 'relay' | 'flags';

/** One row of the settings table: where its value comes from, what it means, how it is parsed. */
export interface SettingSpec<T> {
  /** Environment variable name. */
  readonly env: string;
  /** Command-line flag, without the leading dashes. */
  readonly flag: string;
  readonly scope: SettingScope;
  /** The default, as a user would write it. */
  readonly default: string;
  readonly description: string;
  readonly parse: (raw: string, name: string) => T;
}

/** Declares a setting; the identity, so the table keeps each parse function's type. */
export function setting<T>(spec: SettingSpec<T>): SettingSpec<T> {
  return spec;
}

/** An integer from `min` to `max`. */
export function integer(min: number, max: number) {
  return (raw: string, name: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) {
      throw new ConfigError(name, `expected an integer from ${min} to ${max}, got '${raw}'`);
    }
    const value = Number(raw);
    if (value < min || value > max) {
      throw new ConfigError(name, `expected an integer from ${min} to ${max}, got ${value}`);
    }
    return value;
  };
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Parses `250ms`, `30s`, `5m`, `2h`, `7d` or a bare number of milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = DURATION_UNITS[match[2] ?? 'ms'] ?? 1;
  return Math.round(amount * unit);
}

/** A duration (see {@link parseDuration}) from `minMs` to `maxMs`, in milliseconds. */
export function duration(minMs: number, maxMs: number) {
  return (raw: string, name: string): number => {
    const value = parseDuration(raw);
    if (value === undefined) {
      throw new ConfigError(name, `expected a duration such as 500ms, 30s, 5m or 7d, got '${raw}'`);
    }
    if (value < minMs || value > maxMs) {
      throw new ConfigError(
        name,
        `expected a duration from ${minMs}ms to ${maxMs}ms, got '${raw}'`,
      );
    }
    return value;
  };
}

/** true/false, yes/no, on/off or 1/0. */
export function boolean(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(name, `expected true or false, got '${raw}'`);
}

/** A URL with one of `protocols` (e.g. `amqp:`); a bad one is echoed without its password. */
export function url(protocols: readonly string[]) {
  return (raw: string, name: string): string => {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new ConfigError(
        name,
        `expected a URL (${protocols.join(', ')}), got '${redactUrl(raw)}'`,
      );
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(
        name,
        `expected a ${protocols.join(' or ')} URL, got '${redactUrl(raw)}'`,
      );
    }
    return raw;
  };
}

/** One of `values`, case-insensitively. */
export function oneOf<const T extends string>(values: readonly T[]) {
  return (raw: string, name: string): T => {
    const value = raw.trim().toLowerCase();
    const found = values.find((candidate) => candidate === value);
    if (!found) throw new ConfigError(name, `expected one of ${values.join(', ')}, got '${raw}'`);
    return found;
  };
}

/** Like {@link url}, or empty for none. */
export function optionalUrl(protocols: readonly string[]) {
  const parse = url(protocols);
  return (raw: string, name: string): string => (raw.trim() === '' ? '' : parse(raw, name));
}

/** A TCP port (0: any free port), or empty for none. */
export function optionalPort(raw: string, name: string): number | undefined {
  if (raw.trim() === '') return undefined;
  return integer(0, 65_535)(raw, name);
}

/** A prefix Prometheus accepts at the start of a metric name (or empty). */
export function metricsPrefix(raw: string, name: string): string {
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]{0,63}$|^$/.test(raw)) {
    throw new ConfigError(
      name,
      `expected a metric name prefix (letters, digits, '_', ':'), got '${raw}'`,
    );
  }
  return raw;
}

/** Any text, trimmed. */
export function text(raw: string): string {
  return raw.trim();
}

/** A LaunchDarkly flag key. */
export function flagKey(raw: string, name: string): string {
  if (!/^[A-Za-z0-9._-]{1,255}$/.test(raw)) {
    throw new ConfigError(
      name,
      `expected a flag key (letters, digits, '.', '_', '-'), got '${raw}'`,
    );
  }
  return raw;
}

/** An outbox schema name (src/schema-name.ts). */
export function identifier(raw: string, name: string): string {
  if (!SCHEMA_NAME.test(raw)) {
    throw new ConfigError(
      name,
      `expected a lower-case SQL identifier (letters, digits, underscores; at most 63), got '${raw}'`,
    );
  }
  return raw;
}
