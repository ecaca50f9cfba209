/**
 * `outbox-relay run`: wires the relay to PostgreSQL and RabbitMQ and runs it
 * until SIGTERM/SIGINT (or, with --once, until nothing is pending).
 */
import { randomUUID } from 'node:crypto';
import { AmqpPublisher, connectionName } from '../broker/amqp-publisher.js';
import type { Config } from '../config.js';
import { NotifyListener } from '../db/notify-listener.js';
import { checkDatabase, createPool } from '../db/pool.js';
import { OutboxError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { outboxStatements, readSequence } from '../outbox/queries.js';
import { Relay } from '../relay/relay.js';
import { RetentionCleaner } from '../relay/retention-cleaner.js';
import { SequenceWatcher } from '../relay/sequence-watcher.js';
import { WakeSignal } from '../relay/wake-signal.js';
import { allowAllTenants } from '../tenants/allow-all-gate.js';

/** Runs the relay; resolves with the exit code once it has shut down. */
export async function runCommand(
  config: Config,
  options: { once: boolean; relayId?: string },
  logger: Logger,
): Promise<number> {
  const relayId = options.relayId ?? randomUUID();
  const statements = outboxStatements(config.schema);
  const pool = createPool({
    url: config.databaseUrl,
    max: config.batchesInFlight + 3,
    connectTimeoutMs: config.connectTimeoutMs,
    applicationName: `outbox-relay ${relayId}`,
    onError: (error) => logger.warn('idle database connection failed', { error }),
  });
  const closers: (() => Promise<void>)[] = [() => pool.end().catch(() => undefined)];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close();
  };
  try {
    await checkDatabase(pool, config.databaseUrl);
    const table = await pool.query<{ exists: boolean }>(
      'select to_regclass($1) is not null as exists',
      [`"${config.schema}".messages`],
    );
    if (!table.rows[0]?.exists) {
      throw new OutboxError(
        'DATABASE_UNAVAILABLE',
        `the outbox table ${config.schema}.messages does not exist: run \`outbox-relay migrate up\` first`,
      );
    }
    const publisher = await AmqpPublisher.connect({
      url: config.amqpUrl,
      channels: config.channels,
      maxInFlight: config.maxInFlight,
      heartbeatMs: config.heartbeatMs,
      connectTimeoutMs: config.connectTimeoutMs,
      connectionName: connectionName(relayId),
      logger,
    });
    // The relay's stop() already waited for confirms within the shutdown timeout.
    closers.push(() => publisher.close(0));
    logger.warn('no tenant flag source configured: every tenant is enabled');
    const gate = allowAllTenants();
    const wake = new WakeSignal();
    const relay = new Relay(
      {
        relayId,
        batchSize: config.batchSize,
        batchesInFlight: config.batchesInFlight,
        tenantsPerClaim: config.tenantsPerClaim,
        leaseMs: config.leaseMs,
        retentionMs: config.retentionMs,
        maxAttempts: config.maxAttempts,
        pollIntervalMs: config.pollIntervalMs,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      },
      { pool, statements, publisher, gate, logger, wake },
    );

    if (options.once) {
      const result = await relay.drain();
      logger.info('run --once finished', { ...result });
      process.stdout.write(`${JSON.stringify(result)}\n`);
      await closeAll();
      if (result.failed > 0) {
        process.stderr.write(
          `outbox-relay: ${result.failed} messages failed to publish; they stay in the outbox and will be retried\n`,
        );
        return 1;
      }
      return 0;
    }

    const watcher = new SequenceWatcher(
      () => readSequence(pool, statements),
      wake,
      config.wakeIntervalMs,
      logger,
    );
    const listener = config.listen
      ? new NotifyListener({
          url: config.databaseUrl,
          channel: statements.notifyChannel,
          connectTimeoutMs: config.connectTimeoutMs,
          onNotify: () => wake.ring(),
          logger,
        })
      : undefined;
    const cleaner = new RetentionCleaner(pool, statements, config.retentionMs, 60_000, logger);
    gate.onChange(() => wake.ring());

    watcher.start();
    await listener?.start();
    cleaner.start();
    relay.start();
    logger.info('relay started', {
      schema: config.schema,
      batchSize: config.batchSize,
      channels: config.channels,
    });

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

    watcher.stop();
    await listener?.stop();
    await cleaner.stop();
    await relay.stop();
    await closeAll();
    logger.info('relay stopped', { ...relay.stats() });
    return 0;
  } catch (error) {
    await closeAll();
    throw error;
  }
}
