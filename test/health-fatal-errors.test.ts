/**
 * An error nothing handled ends the process: logged with its cause, then the
 * bounded shutdown SIGTERM runs, then exit 1 for the orchestrator to restart
 * it. The handler is tested as a unit; then a real `outbox-relay run` gets an
 * unhandled rejection and an uncaught exception from a preload script
 * (`node --import`, test code only) that raises them when the test sends it
 * SIGUSR2 — the stand-in for a bug, since the relay has no known one.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { fatalErrorHandler } from '../src/cli/fatal-errors.js';
import { CLI, loggedEntry } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { recordingLogger } from './helpers/recording-logger.js';
import { waitFor } from './helpers/wait.js';

describe('the fatal error handler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('logs the error with its cause, starts the shutdown once, and only logs a second error', () => {
    const { logger, logged } = recordingLogger();
    const shutdown = vi.fn(() => true);
    const exit = vi.fn();
    const handler = fatalErrorHandler({
      logger: () => logger,
      shutdown,
      limitMs: () => 60_000,
      exit,
    });
    const error = new Error('lost the thread', { cause: new Error('ECONNRESET') });
    handler.handle('unhandled rejection', error);
    handler.handle('uncaught exception', new Error('second'));
    expect(handler.fatal()).toBe(true);
    expect(shutdown).toHaveBeenCalledTimes(1);
    expect(exit).not.toHaveBeenCalled();
    expect(logged[0]).toMatchObject({
      message: 'unhandled rejection: shutting down, then exiting 1',
      fields: { error, limitMs: 60_000 },
    });
    expect(logged[1]).toMatchObject({ message: 'uncaught exception while shutting down' });
  });

  it('exits 1 at once when the command has no shutdown to run', () => {
    const { logger } = recordingLogger();
    const exit = vi.fn();
    fatalErrorHandler({
      logger: () => logger,
      shutdown: () => false,
      limitMs: () => 1000,
      exit,
    }).handle('unhandled rejection', 'a string reason');
    expect(exit).toHaveBeenCalledWith(1);
  });

  it('exits 1 when the shutdown does not finish within its limit', () => {
    vi.useFakeTimers();
    const { logger, logged } = recordingLogger();
    const exit = vi.fn();
    fatalErrorHandler({
      logger: () => logger,
      shutdown: () => true,
      limitMs: () => 25_000,
      exit,
    }).handle('uncaught exception', new Error('boom'));
    vi.advanceTimersByTime(24_999);
    expect(exit).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(exit).toHaveBeenCalledWith(1);
    expect(logged.at(-1)?.message).toBe(
      'shutdown after an unhandled error did not finish in time; exiting',
    );
  });
});

const fixture = useOutboxFixture('hfatal', { resetEachTest: true });
const dir = mkdtempSync(join(tmpdir(), 'outbox-hfatal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A preload that raises `fault` on SIGUSR2; test code, never part of the relay. */
function preload(name: string, fault: string): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(path, `process.on('SIGUSR2', () => {\n  ${fault}\n});\n`);
  return pathToFileURL(path).href;
}

/** `node --import <preload> outbox-relay run`, its output collected. */
function startRelayWith(preloadUrl: string) {
  const child = spawn(process.execPath, ['--import', preloadUrl, CLI, 'run'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...cliEnv(fixture, { LOG_LEVEL: 'info' }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => resolve(code)),
  );
  return { child, exited, output: () => output };
}

const FAULTS = [
  {
    kind: 'unhandled rejection',
    fault:
      "Promise.reject(new Error('lost the thread', { cause: new Error('ECONNRESET from a forgotten socket') }));",
  },
  {
    kind: 'uncaught exception',
    fault:
      "setImmediate(() => { throw new Error('lost the thread', { cause: new Error('ECONNRESET from a forgotten socket') }); });",
  },
] as const;

describe('a running relay after an error nothing handled', () => {
  for (const { kind, fault } of FAULTS) {
    it(`logs the ${kind} with its cause, releases its leases, and exits 1`, async () => {
      const { db, broker } = fixture;
      const relay = startRelayWith(preload(kind.replace(' ', '-'), fault));
      try {
        await waitFor(
          () => loggedEntry(relay.output(), 'relay started') !== undefined,
          'the relay to start',
        );
        const relayId = String(loggedEntry(relay.output(), 'relay started')?.relayId);
        await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 10);
        await waitFor(() => broker.received.length === 20, 'the events');
        const leases = `select count(*)::int as n from "${db.schema}".tenant_leases
          where relay_id = $1 and leased_until > now()`;
        expect((await db.pool.query(leases, [relayId])).rows[0].n).toBe(2);

        const faultAt = Date.now();
        relay.child.kill('SIGUSR2');
        expect(await relay.exited, relay.output()).toBe(1);
        // Well within OUTBOX_SHUTDOWN_TIMEOUT (10 s): nothing was in flight.
        expect(Date.now() - faultAt).toBeLessThan(10_000);

        const logged = loggedEntry(relay.output(), `${kind}: shutting down, then exiting 1`);
        expect(logged?.level, relay.output()).toBeDefined();
        const error = logged?.error as { message: string; cause: { message: string } };
        expect(error.message).toBe('lost the thread');
        expect(error.cause.message).toBe('ECONNRESET from a forgotten socket');
        // The shutdown SIGTERM runs, not an abrupt exit: the leases are given back.
        expect(loggedEntry(relay.output(), 'relay stopped')).toBeDefined();
        expect((await db.pool.query(leases, [relayId])).rows[0].n).toBe(0);
      } finally {
        if (relay.child.exitCode === null) relay.child.kill('SIGKILL');
      }
    });
  }
});
