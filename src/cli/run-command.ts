/**
 * `outbox-relay run`: runs the relay until SIGTERM/SIGINT (or, with --once,
 * until nothing more can be published).
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import { openRelayRuntime } from '../runtime/relay-runtime.js';

/** Time beyond OUTBOX_SHUTDOWN_TIMEOUT for closing connections and releasing leases. */
const SHUTDOWN_GRACE_MS = 10_000;

/** Runs the relay; resolves with the exit code once it has shut down. */
export async function runCommand(
  config: Config,
  options: { once: boolean },
  logger: Logger,
): Promise<number> {
  const runtime = await openRelayRuntime(config, { logger });

  if (options.once) {
    logger.info('relay started (--once)', { relayId: runtime.relayId, schema: config.schema });
    const result = await runtime.relay.drain();
    logger.info('run --once finished', { ...result });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    await runtime.close();
    if (result.failed > 0) {
      const retried = result.failed - result.dead;
      process.stderr.write(
        `outbox-relay: ${result.failed} messages failed to publish: ${retried} stay pending and will be retried, ${result.dead} went dead (see \`outbox-relay dead list\`)\n`,
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
  const limitMs = config.shutdownTimeoutMs + SHUTDOWN_GRACE_MS;
  const hardStop = setTimeout(() => {
    logger.error('shutdown did not finish in time; exiting', { limitMs });
    process.exit(1);
  }, limitMs);
  hardStop.unref();
  await runtime.stop();
  clearTimeout(hardStop);
  return 0;
}
