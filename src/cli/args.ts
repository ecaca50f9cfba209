/**
 * Command-line parsing for every command: flags come from the settings table,
 * so each setting's flag and environment variable always match.
 *
 * The rules, the same for every flag:
 * - `--name value` and `--name=value` are the same; a value that starts with
 *   `-` must be written `--name=-value`, except a negative number
 *   (`--limit -5` reaches the flag's own range check);
 * - a flag that takes a value without one, a value given to a flag that takes
 *   none, an unknown flag, and an empty value of a command's own flag are
 *   usage errors naming the flag;
 * - a flag given twice is a usage error, unless the command declares it
 *   repeatable (`dead --id`): a command never silently keeps one of two values;
 * - `--` ends the flags; `--help` / `-h` anywhere before it shows the help.
 */
import { type SettingScope, settingsFor } from '../config.js';

/** A command-line mistake; the CLI exits 2 with this message. */
export class UsageError extends Error {}

/** Flags a command takes besides the settings. */
export interface ExtraFlag {
  name: string;
  type: 'boolean' | 'string';
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  description: string;
}

/** What a command got on its command line. */
export interface ParsedArgs {
  positionals: string[];
  /** Setting flags, keyed by flag name. */
  settings: Record<string, string>;
  /** Extra flags of the command. */
  extra: Record<string, string | boolean | string[]>;
  help: boolean;
}

interface FlagSpec {
  type: 'boolean' | 'string';
  multiple: boolean;
  setting: boolean;
}

/** True for an argument that is a flag rather than a value: `-x`, `--x`, but not `-` or `-5`. */
function looksLikeFlag(arg: string): boolean {
  return arg.startsWith('-') && arg !== '-' && !/^-\d/.test(arg);
}

/** Whether `argv` asks for help (before any `--`). */
function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** Levenshtein distance, for "did you mean" on a mistyped flag. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost);
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

function unknownFlag(raw: string, known: Iterable<string>): UsageError {
  const name = raw.replace(/^-+/, '');
  let best: string | undefined;
  for (const candidate of known) {
    if (
      distance(name, candidate) <= 2 &&
      (!best || distance(name, candidate) < distance(name, best))
    )
      best = candidate;
  }
  return new UsageError(`unknown option '${raw}'${best ? ` (did you mean --${best}?)` : ''}`);
}

/** Parses `argv` for a command taking the settings of `scopes` plus `extra` flags. */
export function parseCommandArgs(
  argv: readonly string[],
  scopes: readonly SettingScope[],
  extra: readonly ExtraFlag[] = [],
): ParsedArgs {
  const result: ParsedArgs = { positionals: [], settings: {}, extra: {}, help: wantsHelp(argv) };
  // Help wins over every other mistake on the line.
  if (result.help) return result;
  const specs = new Map<string, FlagSpec>();
  for (const [, spec] of settingsFor(scopes))
    specs.set(spec.flag, { type: 'string', multiple: false, setting: true });
  for (const flag of extra)
    specs.set(flag.name, { type: flag.type, multiple: flag.multiple === true, setting: false });

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      result.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!looksLikeFlag(arg)) {
      result.positionals.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const raw = equals === -1 ? arg : arg.slice(0, equals);
    const name = raw.startsWith('--') ? raw.slice(2) : '';
    const spec = specs.get(name);
    if (!spec) throw unknownFlag(raw, specs.keys());
    let value: string | true;
    if (spec.type === 'boolean') {
      if (equals !== -1) throw new UsageError(`${raw} takes no value, got '${arg}'`);
      value = true;
    } else if (equals !== -1) {
      value = arg.slice(equals + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined || next === '--' || looksLikeFlag(next)) {
        throw new UsageError(
          next === undefined || next === '--'
            ? `${raw} needs a value`
            : `${raw} needs a value, got option '${next}' (write ${raw}=${next} if that is the value)`,
        );
      }
      value = next;
      i++;
    }
    if (!spec.setting && value === '') throw new UsageError(`${raw} needs a value, got ''`);
    const store = spec.setting ? result.settings : result.extra;
    const previous = store[name];
    if (spec.multiple) {
      store[name] = [...(Array.isArray(previous) ? previous : []), value as string];
    } else if (previous !== undefined) {
      throw new UsageError(
        spec.type === 'boolean'
          ? `${raw} given more than once`
          : `${raw} given more than once ('${previous}', then '${value}'); give it once`,
      );
    } else {
      store[name] = value;
    }
  }
  return result;
}

/** A string-valued extra flag, or undefined when not given. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.extra[name];
  return typeof value === 'string' ? value : undefined;
}

/** A repeatable string flag's values, in order (empty when not given). */
export function stringsFlag(args: ParsedArgs, name: string): string[] {
  const value = args.extra[name];
  if (Array.isArray(value)) return value;
  return typeof value === 'string' ? [value] : [];
}

/**
 * A whole-number extra flag within [min, max], undefined when not given;
 * anything else (negative, below min, fractional, `1e3`, `0x10`) is a usage
 * error naming the flag and the range.
 */
export function integerFlag(
  args: ParsedArgs,
  name: string,
  range: { min: number; max: number },
): number | undefined {
  const raw = stringFlag(args, name);
  if (raw === undefined) return undefined;
  const value = /^\d{1,15}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value >= range.min && value <= range.max)) {
    throw new UsageError(
      `--${name} expects a whole number from ${range.min} to ${range.max}, got '${raw}'`,
    );
  }
  return value;
}
