/**
 * What the CLI does with an error nothing handled, on fake timers with the
 * process stood in for (the health tests check it in a real relay process):
 * log it, run the command's bounded shutdown, and exit 1, at once when there
 * is no shutdown to run or when the shutdown overruns its limit.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FATAL_EXIT_CODE, fatalErrorHandler } from '../../src/cli/fatal-errors.js';
import type { Logger } from '../../src/log/logger.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function setup(hasShutdown: boolean, limitMs = 5000) {
  const errors: { message: string; fields: Record<string, unknown> | undefined }[] = [];
  const logger: Logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (message, fields) => errors.push({ message, fields }),
  };
  const exits: number[] = [];
  let shutdowns = 0;
  const handler = fatalErrorHandler({
    logger: () => logger,
    shutdown: () => {
      shutdowns += 1;
      return hasShutdown;
    },
    limitMs: () => limitMs,
    exit: (code) => exits.push(code),
  });
  return { handler, errors, exits, shutdowns: () => shutdowns };
}

describe('the fatal error handler', () => {
  it('logs the error, starts the shutdown, and exits 1 if the shutdown overruns its limit', () => {
    const { handler, errors, exits, shutdowns } = setup(true, 5000);
    expect(handler.fatal()).toBe(false);
    const error = new Error('the loop died');
    handler.handle('unhandled rejection', error);

    expect(handler.fatal()).toBe(true);
    expect(shutdowns()).toBe(1);
    expect(errors).toEqual([
      {
        message: `unhandled rejection: shutting down, then exiting ${FATAL_EXIT_CODE}`,
        fields: { error, limitMs: 5000 },
      },
    ]);
    vi.advanceTimersByTime(4999);
    expect(exits).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(exits).toEqual([1]);
    expect(errors.at(-1)?.message).toBe(
      'shutdown after an unhandled error did not finish in time; exiting',
    );
  });

  it('exits 1 at once when the command has no shutdown to run, and only once', () => {
    const { handler, exits } = setup(false);
    handler.handle('uncaught exception', new TypeError('x is undefined'));
    expect(exits).toEqual([1]);
    vi.advanceTimersByTime(60_000);
    expect(exits).toEqual([1]);
  });

  it('only logs a second error while shutting down, without a second shutdown or timer', () => {
    const { handler, errors, exits, shutdowns } = setup(true, 5000);
    handler.handle('uncaught exception', new Error('first'));
    vi.advanceTimersByTime(1000);
    const second = new Error('second');
    handler.handle('unhandled rejection', second);
    expect(shutdowns()).toBe(1);
    expect(errors.at(-1)).toEqual({
      message: 'unhandled rejection while shutting down',
      fields: { error: second },
    });
    // The first error's limit still holds: 5 s after it, one exit.
    vi.advanceTimersByTime(4000);
    expect(exits).toEqual([1]);
    vi.advanceTimersByTime(60_000);
    expect(exits).toEqual([1]);
  });
});
