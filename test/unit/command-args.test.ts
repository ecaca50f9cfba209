/**
 * The command-line parser on its own (the CLI tests run it through the built
 * CLI, one process per case): the same rules for every flag, with flags taken
 * from the settings table of the command's scopes plus its own.
 */
import { describe, expect, it } from 'vitest';
import {
  type ExtraFlag,
  integerFlag,
  parseCommandArgs,
  stringsFlag,
  UsageError,
} from '../../src/cli/args.js';

const EXTRA: readonly ExtraFlag[] = [
  { name: 'yes', type: 'boolean', description: 'confirm' },
  { name: 'tenant', type: 'string', description: 'one tenant' },
  { name: 'id', type: 'string', multiple: true, description: 'ids' },
  { name: 'limit', type: 'string', description: 'how many' },
];

const parse = (...argv: string[]) => parseCommandArgs(argv, ['database'], EXTRA);

/** The usage error `argv` raises. */
function usageError(...argv: string[]): UsageError {
  try {
    parse(...argv);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error(`no usage error for ${JSON.stringify(argv)}`);
}

describe('the command-line parser', () => {
  it('reads `--name value` and `--name=value` alike, settings and extra flags apart', () => {
    expect(parse('list', '--schema', 'app', '--tenant=acme', '--yes')).toEqual({
      positionals: ['list'],
      settings: { schema: 'app' },
      extra: { tenant: 'acme', yes: true },
      help: false,
    });
  });

  it('takes a negative number as a value, and a value starting with - only after =', () => {
    expect(parse('--limit', '-5').extra.limit).toBe('-5');
    expect(parse('--tenant=-odd').extra.tenant).toBe('-odd');
    expect(usageError('--tenant', '-odd').message).toBe(
      "--tenant needs a value, got option '-odd' (write --tenant=-odd if that is the value)",
    );
  });

  it('refuses a missing value, a value to a boolean flag and an empty value of a command flag, naming the flag', () => {
    expect(usageError('--tenant').message).toBe('--tenant needs a value');
    expect(usageError('--tenant', '--').message).toBe('--tenant needs a value');
    expect(usageError('--yes=no').message).toBe("--yes takes no value, got '--yes=no'");
    expect(usageError('--tenant=').message).toBe("--tenant needs a value, got ''");
    // A setting may be empty here: the configuration decides what an empty value means.
    expect(parse('--schema=').settings.schema).toBe('');
  });

  it('refuses an unknown flag, suggesting a close one', () => {
    expect(usageError('--tenat', 'a').message).toBe(
      "unknown option '--tenat' (did you mean --tenant?)",
    );
    expect(usageError('--frobnicate').message).toBe("unknown option '--frobnicate'");
    // Settings of other scopes are unknown to this command.
    expect(usageError('--batch-size', '5').message).toMatch(/^unknown option '--batch-size'/);
    expect(usageError('-x').message).toMatch(/^unknown option '-x'/);
  });

  it('refuses a flag given twice, unless it is repeatable, whose values it keeps in order', () => {
    expect(usageError('--tenant', 'a', '--tenant=b').message).toBe(
      "--tenant given more than once ('a', then 'b'); give it once",
    );
    expect(usageError('--yes', '--yes').message).toBe('--yes given more than once');
    expect(usageError('--schema', 'a', '--schema', 'b').message).toMatch(
      /^--schema given more than once/,
    );
    const args = parse('--id', '3', '--id=1', '--id', '2');
    expect(stringsFlag(args, 'id')).toEqual(['3', '1', '2']);
    expect(stringsFlag(parse(), 'id')).toEqual([]);
  });

  it('ends the flags at --, and shows help for --help or -h anywhere before it, over any mistake', () => {
    expect(parse('a', '--', '--yes', '-h')).toMatchObject({
      positionals: ['a', '--yes', '-h'],
      extra: {},
      help: false,
    });
    expect(parse('--frobnicate', '-h').help).toBe(true);
    expect(parse('--tenant', '--help').help).toBe(true);
    expect(parse('-', '--yes').positionals).toEqual(['-']);
  });

  it('reads a whole number flag within its range, refusing anything else with the range', () => {
    const limit = (value: string) =>
      integerFlag(parse(`--limit=${value}`), 'limit', { min: 1, max: 100 });
    expect(integerFlag(parse(), 'limit', { min: 1, max: 100 })).toBeUndefined();
    expect(limit('1')).toBe(1);
    expect(limit('100')).toBe(100);
    for (const bad of ['0', '101', '-5', '1.5', '1e2', '0x10', ' 5', 'ten']) {
      expect(() => limit(bad)).toThrow(
        new UsageError(`--limit expects a whole number from 1 to 100, got '${bad}'`),
      );
    }
  });
});
