/**
 * Builds a real relay (real pool, real AMQP publisher) on a test schema.
 */
import { randomUUID } from 'node:crypto';
import { AmqpPublisher, connectionName } from '../../src/broker/amqp-publisher.js';
import { type Logger, silentLogger } from '../../src/log/logger.js';
import { Relay, type RelayOptions } from '../../src/relay/relay.js';
import type { RelayObserver } from '../../src/relay/relay-observer.js';
import type { TenantGate } from '../../src/relay/tenant-gate.js';
import { allowAllTenants } from '../../src/tenants/allow-all-gate.js';
import type { TestDatabase } from './database.js';

/** A relay and its publisher; `close()` stops both. */
export interface TestRelay {
  relay: Relay;
  publisher: AmqpPublisher;
  relayId: string;
  close(): Promise<void>;
}

/** Options a test may override. */
export type TestRelayOptions = Partial<RelayOptions> & {
  channels?: number;
  maxInFlight?: number;
  maxMessageBytes?: number;
  gate?: TenantGate;
  observer?: RelayObserver;
  /** The relay's logger (the publisher's stays silent). */
  logger?: Logger;
  heartbeatMs?: number;
  confirmTimeoutMs?: number;
};

/** Connects a publisher to `amqpUrl` and builds a relay on `db`. */
export async function createTestRelay(
  db: TestDatabase,
  amqpUrl: string,
  options: TestRelayOptions = {},
): Promise<TestRelay> {
  const relayId = options.relayId ?? randomUUID();
  const publisher = await AmqpPublisher.connect({
    url: amqpUrl,
    channels: options.channels ?? 2,
    maxInFlight: options.maxInFlight ?? 500,
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
    heartbeatMs: options.heartbeatMs ?? 10_000,
    confirmTimeoutMs: options.confirmTimeoutMs ?? 15_000,
    connectTimeoutMs: 5000,
    connectionName: connectionName(relayId),
    logger: silentLogger,
  });
  const relay = new Relay(
    {
      relayId,
      batchSize: options.batchSize ?? 500,
      batchesInFlight: options.batchesInFlight ?? 3,
      tenantsPerClaim: options.tenantsPerClaim ?? 100,
      leaseMs: options.leaseMs ?? 60_000,
      retentionMs: options.retentionMs ?? 0,
      maxAttempts: options.maxAttempts ?? 10,
      pollIntervalMs: options.pollIntervalMs ?? 50,
      shutdownTimeoutMs: options.shutdownTimeoutMs ?? 5000,
    },
    {
      store: db.store,
      publisher,
      gate: options.gate ?? allowAllTenants(),
      logger: options.logger ?? silentLogger,
      ...(options.observer ? { observer: options.observer } : {}),
    },
  );
  return {
    relay,
    publisher,
    relayId,
    async close() {
      await relay.stop();
      await publisher.close(1000);
    },
  };
}
