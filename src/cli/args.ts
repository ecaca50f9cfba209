/**
 * Command-line parsing for every command: flags come from the settings table,
 * so each setting's flag and environment variable always match.
 */
import { parseArgs } from 'node:util';
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

/** Parses `argv` for a command taking the settings of `scopes` plus `extra` flags. */
export function parseCommandArgs(
  argv: readonly string[],
  scopes: readonly SettingScope[],
  extra: readonly ExtraFlag[] = [],
): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [, spec] of settingsFor(scopes)) options[spec.flag] = { type: 'string' };
  for (const flag of extra)
    options[flag.name] = { type: flag.type, ...(flag.multiple ? { multiple: true } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message.split('\n')[0] : String(error));
  }
  const settings: Record<string, string> = {};
  for (const [, spec] of settingsFor(scopes)) {
    const value = parsed.values[spec.flag];
    if (typeof value === 'string') settings[spec.flag] = value;
  }
  const extras: Record<string, string | boolean | string[]> = {};
  for (const flag of extra) {
    const value = parsed.values[flag.name];
    if (typeof value === 'string' || typeof value === 'boolean') extras[flag.name] = value;
    else if (Array.isArray(value)) extras[flag.name] = value.map(String);
  }
  return {
    positionals: parsed.positionals,
    settings,
    extra: extras,
    help: parsed.values.help === true,
  };
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
