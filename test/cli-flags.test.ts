import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

/**
 * Nothing listens on port 1: a command line that got past the parser by
 * mistake fails with exit 1 (cannot connect), never touches a database, and
 * fails the test, which expects 2.
 */
const env = { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' };

async function expectUsageError(args: string[], message: RegExp): Promise<void> {
  const result = await runCli(args, env);
  expect(result.stderr).toMatch(message);
  expect(result).toMatchObject({ code: 2, stdout: '' });
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
}

describe('the command line, the same rules for every flag', () => {
  it.each([
    [
      ['purge', '--tenant', 'a', '--tenant', 'b', '--yes'],
      "--tenant given more than once ('a', then 'b')",
    ],
    [
      ['purge', '--tenant=a', '--tenant', 'b', '--yes'],
      "--tenant given more than once ('a', then 'b')",
    ],
    [
      ['dead', 'discard', '--tenant', 'a', '--tenant', 'b', '--yes'],
      '--tenant given more than once',
    ],
    [
      ['purge', '--tenant', 'a', '--before', '2026-01-01', '--before', '2026-02-01', '--yes'],
      '--before given more than once',
    ],
    [['dead', 'list', '--limit', '5', '--limit', '6'], '--limit given more than once'],
    [['run', '--batch-size', '5', '--batch-size', '6'], '--batch-size given more than once'],
    [['tenants', '--schema', 'a', '--schema=b'], "--schema given more than once ('a', then 'b')"],
    [['purge', '--tenant', 'a', '--yes', '--yes'], '--yes given more than once'],
  ])('refuses a flag given twice: %j', async (args, message) => {
    await expectUsageError(args, new RegExp(escapeRegExp(message)));
  });

  it.each([
    [['purge', '--tenant'], /--tenant needs a value \(/],
    [
      ['purge', '--tenant', '--yes'],
      /--tenant needs a value, got option '--yes' \(write --tenant=--yes/,
    ],
    [['purge', '--tenant=', '--yes'], /--tenant needs a value, got ''/],
    [['dead', 'list', '--tenant', '--json'], /--tenant needs a value, got option '--json'/],
    [['run', '--batch-size'], /--batch-size needs a value/],
    [['run', '--batch-size', '--', '5'], /--batch-size needs a value/],
  ])('refuses a flag without its value: %j', async (args, message) => {
    await expectUsageError(args, message);
  });

  it.each([
    [['dead', 'list', '--json=false'], /--json takes no value, got '--json=false'/],
    [['purge', '--tenant', 'a', '--yes=no'], /--yes takes no value, got '--yes=no'/],
    [['run', '--once=true'], /--once takes no value/],
  ])('refuses a value given to a flag that takes none: %j', async (args, message) => {
    await expectUsageError(args, message);
  });

  it.each([
    [['dead', 'list', '--limt', '5'], /unknown option '--limt' \(did you mean --limit\?\)/],
    [['tenants', '-x'], /unknown option '-x'/],
    [['tenants', 'extra'], /unexpected argument 'extra'/],
    [['--schema', 'x', 'tenants'], /expected a command before options, got '--schema'/],
    [['-v'], /unknown option '-v' \(did you mean --version\?\)/],
    [['help', 'launch'], /unknown command 'launch'/],
  ])('refuses an unknown flag or argument: %j', async (args, message) => {
    await expectUsageError(args, message);
  });

  it.each([['-5'], ['0'], ['1.5'], ['1e3'], ['0x10'], ['100001'], ['lots']])(
    'dead list --limit %s names the flag and the range',
    async (limit) => {
      await expectUsageError(
        ['dead', 'list', '--limit', limit],
        new RegExp(`--limit expects a whole number from 1 to 100000, got '${escapeRegExp(limit)}'`),
      );
      await expectUsageError(
        ['dead', 'list', `--limit=${limit}`],
        /--limit expects a whole number from 1 to 100000/,
      );
    },
  );

  it.each([
    [
      ['run', '--batch-size', '-5'],
      /invalid --batch-size: expected an integer from 1 to 10000, got -5/,
    ],
    [
      ['run', '--batch-size', '0'],
      /invalid --batch-size: expected an integer from 1 to 10000, got 0/,
    ],
    [
      ['run', '--batch-size=2.5'],
      /invalid --batch-size: expected an integer from 1 to 10000, got '2.5'/,
    ],
    [['dead', 'retry', '--id', '1', '--limit', '5'], /--limit applies to dead list only/],
    [['dead', 'discard', '--id', '1', '--json', '--yes'], /--json applies to dead list only/],
    [['dead', 'retry', '--id', '-3'], /--id expects a row id \(a number\), got '-3'/],
    [['dead', 'retry', '--id', '99999999999999999999'], /--id expects a row id/],
    [['dead', 'retry', '--id', '9223372036854775808'], /--id expects a row id/],
  ])('names the flag and what it accepts: %j', async (args, message) => {
    await expectUsageError(args, message);
  });

  it.each([
    ['2026-02-30', /is not a real date and time \(2026-02 has 28 days\)/],
    ['2026-02-29', /\(2026-02 has 28 days\)/],
    ['2028-02-30T00:00:00Z', /\(2028-02 has 29 days\)/],
    ['2026-04-31', /\(2026-04 has 30 days\)/],
    ['2026-13-01', /\(months go from 01 to 12\)/],
    ['2026-00-10', /\(months go from 01 to 12\)/],
    ['2026-01-00', /\(2026-01 has 31 days\)/],
    ['2026-02-28T24:00:00Z', /\(hours go from 00 to 23\)/],
    ['2026-01-01T12:60Z', /\(minutes go from 00 to 59\)/],
    ['2026-01-01T12:00:60Z', /\(seconds go from 00 to 59\)/],
    ['2026-01-01T12:00+24:00', /\(zone offsets go from -23:59 to \+23:59\)/],
    ['2026-01-01T12:00+01:60', /\(minutes go from 00 to 59\)/],
    ['yesterday', /--before expects an ISO 8601 date .* or a time with a zone/],
    ['2026-01-01T12:00:00', /--before expects an ISO 8601 date .* or a time with a zone/],
    ['2026-1-1', /--before expects an ISO 8601 date/],
  ])(
    'purge --before %s is refused, naming the flag, before anything is deleted',
    async (before, message) => {
      const result = await runCli(['purge', '--tenant', 'acme', '--before', before, '--yes'], env);
      expect(result).toMatchObject({ code: 2, stdout: '' });
      expect(result.stderr).toMatch(/--before/);
      expect(result.stderr).toMatch(message);
    },
  );

  it('shows the help when asked, whatever else is on the line', async () => {
    const result = await runCli(['purge', '--tenant', '--help'], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: outbox-relay purge/);
    expect(result.stdout).toMatch(/--tenant <value>/);
    const topic = await runCli(['help', 'dead'], env);
    expect(topic.code).toBe(0);
    expect(topic.stdout).toMatch(/^Usage: outbox-relay dead/);
  });

  it('escapes control characters of a value it quotes back', async () => {
    const result = await runCli(
      ['purge', '--tenant', 'a', '--tenant', 'b\x1b[2J\nc', '--yes'],
      env,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "outbox-relay: --tenant given more than once ('a', then 'b\\x1b[2J\\nc'); give it once (see outbox-relay --help)\n",
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
