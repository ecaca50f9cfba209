/**
 * `outbox-relay run`: runs the relay until SIGTERM/SIGINT (or, with --once,
 * until nothing more can be published).
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import type { DrainResult } from '../relay/relay.js';
import { openRelayRuntime } from '../runtime/relay-runtime.js';

/** Time beyond OUTBOX_SHUTDOWN_TIMEOUT for closing connections and releasing leases. */
const SHUTDOWN_GRACE_MS = 10_000;

/**
 * Awaits `work` (a shutdown, a close), but exits 1 past `limitMs`: a database
 * or broker that stopped answering must not keep the process alive.
 */
async function exitUnlessDoneWithin(
  work: Promise<void>,
  limitMs: number,
  logger: Logger,
  what: string,
): Promise<void> {
  const hardStop = setTimeout(() => {
    logger.error(`${what} did not finish in time; exiting`, { limitMs });
    process.exit(1);
  }, limitMs);
  hardStop.unref();
  try {
    await work;
  } finally {
    clearTimeout(hardStop);
  }
}

/** Runs the relay; resolves with the exit code once it has shut down. */
export async function runCommand(
  config: Config,
  options: { once: boolean },
  logger: Logger,
): Promise<number> {
  const runtime = await openRelayRuntime(config, { logger });

  if (options.once) {
    logger.info('relay started (--once)', { relayId: runtime.relayId, schema: config.schema });
    const closeLimitMs = config.shutdownTimeoutMs + SHUTDOWN_GRACE_MS;
    let result: DrainResult;
    try {
      result = await runtime.relay.drain();
    } catch (error) {
      // A claim (or its commit, or a settle) failed. Close before failing:
      // the pool, the broker connection and the liveness session would keep
      // the process alive, and `run --once` would never exit. What was not
      // published stays pending for the next run.
      logger.error('run --once failed; closing', { error });
      await exitUnlessDoneWithin(runtime.close(), closeLimitMs, logger, 'closing').catch(
        (closeError: unknown) => logger.warn('closing failed', { error: closeError }),
      );
      throw error;
    }
    logger.info('run --once finished', { ...result });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    await exitUnlessDoneWithin(runtime.close(), closeLimitMs, logger, 'closing');
    // Failures a later pass made good (a lost broker connection) are not failures of the run.
    if (result.unpublished > 0) {
      const retried = result.unpublished - result.dead;
      process.stderr.write(
        `outbox-relay: ${result.unpublished} messages could not be published: ${retried} stay pending and will be retried, ${result.dead} went dead (see \`outbox-relay dead list\`)\n`,
      );
      return 1;
    }
    return 0;
  }

  try {
    await runtime.start();
  } catch (error) {
    await runtime.close();
    throw error;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info('shutting down', { signal });
  // A second signal while shutting down exits at once; unreleased leases expire.
  const force = (second: string) => {
    logger.warn('second signal: exiting without waiting', { signal: second });
    process.exit(1);
  };
  process.once('SIGTERM', force);
  process.once('SIGINT', force);
  // Shutdown is bounded whatever state the relay is in (a broker reconnect,
  // a database that stopped answering): past this, exit and let leases expire.
  await exitUnlessDoneWithin(
    runtime.stop(),
    config.shutdownTimeoutMs + SHUTDOWN_GRACE_MS,
    logger,
    'shutdown',
  );
  return 0;
}
