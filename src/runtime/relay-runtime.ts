/**
 * The composition root of a running relay: connects PostgreSQL and RabbitMQ,
 * wires the relay to its publisher, tenant gate and wake-up sources, and
 * stops it all in order. `outbox-relay run` and the benchmark both use it.
 */
import { randomUUID } from 'node:crypto';
import { AmqpPublisher, connectionName } from '../broker/amqp-publisher.js';
import type { Config } from '../config.js';
import { NotifyListener } from '../db/notify-listener.js';
import { checkDatabase, createPool } from '../db/pool.js';
import { describeError, OutboxError } from '../errors.js';
import { type HealthServer, startHealthServer } from '../http/health-server.js';
import type { Logger } from '../log/logger.js';
import { BacklogMonitor } from '../metrics/backlog-monitor.js';
import { RelayMetrics } from '../metrics/prometheus-metrics.js';
import { pendingMigrations } from '../migrator/migrator.js';
import { readSequence } from '../outbox/backlog-stats.js';
import { claimTransaction } from '../outbox/claim.js';
import { sweepLeases } from '../outbox/leases.js';
import { createOutboxStore, listenStatement, outboxTableExists } from '../outbox/outbox-store.js';
import { redactUrl } from '../redact-url.js';
import type { BackgroundService } from '../relay/background-service.js';
import { LeaseSweeper } from '../relay/lease-sweeper.js';
import { ProgressMonitor } from '../relay/progress-monitor.js';
import type { OutgoingMessage, PublishResult } from '../relay/publisher.js';
import { Relay } from '../relay/relay.js';
import { RetentionCleaner } from '../relay/retention-cleaner.js';
import { SequenceWatcher } from '../relay/sequence-watcher.js';
import type { TenantGate } from '../relay/tenant-gate.js';
import { WakeSignal } from '../relay/wake-signal.js';
import { openTenantGate } from '../tenants/open-tenant-gate.js';
import { ReadinessProbe } from './readiness.js';

/** A connected relay, ready to `start()` (loop) or `drain()` (once). */
export interface RelayRuntime {
  relayId: string;
  relay: Relay;
  /** Starts the background services (wake-up sources, clean-ups, backlog metrics) and the relay loop. */
  start(): Promise<void>;
  /** Stops claiming, waits (bounded) for confirms, releases leases, closes everything. */
  stop(): Promise<void>;
  /** Releases this relay's tenant leases and closes connections, without stopping a loop (after `drain()`). */
  close(): Promise<void>;
}

/** Options of {@link openRelayRuntime}. */
export interface RelayRuntimeOptions {
  logger: Logger;
  relayId?: string;
  /** Observes each message's fate (ack, nack, return) as soon as it is known. */
  onSettled?: (message: OutgoingMessage, result: PublishResult) => void;
  /** A gate to use instead of the configured flag source (tests, embedding). */
  gate?: TenantGate;
}

/**
 * Connects to the database and the broker and builds the relay. Fails with
 * one clear OutboxError if either cannot be reached or the schema is missing.
 */
export async function openRelayRuntime(
  config: Config,
  options: RelayRuntimeOptions,
): Promise<RelayRuntime> {
  const { logger } = options;
  const relayId = options.relayId ?? randomUUID();
  const pool = createPool({
    url: config.databaseUrl,
    // Claims and settles of the batches in flight, the lease sweep, the
    // sequence watcher, the retention clean-up, readiness and backlog
    // metrics, the flag snapshot's writes, and the liveness lock's own
    // connection (held for the relay's life).
    max: config.batchesInFlight + 7,
    connectTimeoutMs: config.connectTimeoutMs,
    applicationName: `outbox-relay ${relayId}`,
    onError: (error) => logger.warn('idle database connection failed', { error }),
  });
  const store = createOutboxStore(pool, config.schema);
  // Reads the claim's SQL files now: a broken install fails at start, not at every claim.
  claimTransaction(store.schema);
  let publisher: AmqpPublisher | undefined;
  try {
    await checkDatabase(pool, config.databaseUrl);
    logger.info('connected to database', { url: redactUrl(config.databaseUrl) });
    if (!(await outboxTableExists(store))) {
      throw new OutboxError(
        'DATABASE_UNAVAILABLE',
        `the outbox table ${config.schema}.messages does not exist: run \`outbox-relay migrate up\` first`,
      );
    }
    const pending = await pendingMigrations(pool, config.schema);
    if (pending.length > 0) {
      throw new OutboxError(
        'DATABASE_UNAVAILABLE',
        `the outbox schema ${config.schema} lacks ${pending.length === 1 ? 'migration' : 'migrations'} ${pending.join(', ')} of this version: run \`outbox-relay migrate up\` first`,
      );
    }
    publisher = await AmqpPublisher.connect({
      url: config.amqpUrl,
      channels: config.channels,
      maxInFlight: config.maxInFlight,
      maxMessageBytes: config.maxMessageBytes,
      heartbeatMs: config.heartbeatMs,
      confirmTimeoutMs: config.confirmTimeoutMs,
      connectTimeoutMs: config.connectTimeoutMs,
      connectionName: connectionName(relayId),
      logger,
      ...(options.onSettled ? { onSettled: options.onSettled } : {}),
    });
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
  const connected = publisher;

  let gate: TenantGate;
  try {
    gate = options.gate ?? (await openTenantGate(config, logger, { pool }));
  } catch (error) {
    await connected.close(0);
    await pool.end().catch(() => undefined);
    throw error;
  }
  const wake = new WakeSignal();
  const progress = new ProgressMonitor({ stallTimeoutMs: config.stallTimeoutMs, logger });
  const readiness = new ReadinessProbe({
    pool,
    publisher: connected,
    gate,
    // The relay is built below; readiness asks it only once running.
    claimFailing: () => relay.claimFailing(),
    timeoutMs: 2000,
  });
  // Metrics only when something can scrape them: the observer sits on the
  // publish path, and the backlog read scans the pending rows.
  const scraped = config.httpPort !== undefined;
  // The gauges read the relay at scrape time, after it exists.
  const metrics = scraped
    ? new RelayMetrics(config.metricsPrefix, {
        broker: () => connected.status(),
        pausedTenants: () => gate.pausedTenants().length,
        throttledTenants: () => relay.throttledTenants(),
        inFlight: () => relay.inFlight(),
        readiness: () => readiness.last(),
        flags: () => gate.status(),
      })
    : undefined;
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
    {
      store,
      publisher: connected,
      gate,
      logger,
      wake,
      progress,
      ...(metrics ? { observer: metrics } : {}),
    },
  );
  const backlog = metrics
    ? new BacklogMonitor(store, metrics, {
        intervalMs: config.statsIntervalMs,
        topTenants: config.metricsTopTenants,
        pausedTenants: () => gate.pausedTenants(),
        decide: (tenants) => gate.decide(tenants),
        logger,
      })
    : undefined;
  let http: HealthServer | undefined;
  const watcher = new SequenceWatcher(
    () => readSequence(store),
    wake,
    config.wakeIntervalMs,
    logger,
  );
  const listener = config.listen
    ? new NotifyListener({
        url: config.databaseUrl,
        listen: listenStatement(store),
        connectTimeoutMs: config.connectTimeoutMs,
        onNotify: () => wake.ring(),
        logger,
      })
    : undefined;
  const cleaner = new RetentionCleaner(store, config.retentionMs, 60_000, logger);
  const sweeper = new LeaseSweeper(() => sweepLeases(store), config.leaseMs, logger);
  // Started in this order, after the HTTP endpoint and before the relay loop;
  // the backlog monitor only when metrics are served.
  const services: BackgroundService[] = [backlog, watcher, listener, cleaner, sweeper].filter(
    (service) => service !== undefined,
  );
  const unsubscribe = gate.onChange(() => wake.ring());

  let relayStopped = false;
  const stopRelay = async () => {
    if (relayStopped) return;
    relayStopped = true;
    await relay.stop();
  };
  const close = async () => {
    // Gives the tenants and the liveness lock back at once (unless stop()
    // did), so a relay started next need not wait (`run --once`).
    await stopRelay();
    unsubscribe();
    await gate.close();
    // The relay's stop() already waited for confirms within the shutdown timeout.
    await connected.close(0);
    await pool.end().catch(() => undefined);
  };

  return {
    relayId,
    relay,
    async start() {
      // First, so that a port already in use fails start-up before anything runs.
      if (config.httpPort !== undefined && metrics) {
        try {
          http = await startHealthServer({
            host: config.httpHost,
            port: config.httpPort,
            liveness: () => progress.check(),
            readiness: () => readiness.check(),
            metrics: async () => {
              // Refresh the `ready` gauge with the scrape.
              await readiness.check();
              return metrics.exposition();
            },
            logger,
          });
        } catch (error) {
          throw new OutboxError(
            'HTTP_ENDPOINT_FAILED',
            `cannot serve HTTP on ${config.httpHost}:${config.httpPort} (OUTBOX_HTTP_PORT): ${describeError(error)}`,
            { cause: error },
          );
        }
      }
      for (const service of services) await service.start();
      relay.start();
      logger.info('relay started', {
        relayId,
        schema: config.schema,
        batchSize: config.batchSize,
        channels: config.channels,
      });
    },
    async stop() {
      // Not ready from here on: an orchestrator stops routing to us at once.
      readiness.markStopping();
      progress.markStopping();
      logger.info('relay stopping', { relayId, shutdownTimeoutMs: config.shutdownTimeoutMs });
      // Each service ends its schedule at once, in start order; a pass in
      // flight (a backlog read is bounded) finishes while the relay stops, and
      // all have ended before the pool is closed.
      const servicesStopped = Promise.all(services.map((service) => service.stop()));
      await stopRelay();
      await servicesStopped;
      await close();
      await http?.close();
      logger.info('relay stopped', { relayId, ...relay.stats() });
    },
    close,
  };
}
