/**
 * outbox-relay's public API for application teams (enqueue) and for embedding
 * the relay. Applications that only enqueue can import `outbox-relay/enqueue`
 * (src/enqueue-entry.ts) instead, which loads none of the relay's libraries.
 */
export { AmqpPublisher, type AmqpPublisherOptions } from './broker/amqp-publisher.js';
export { type Config, loadConfig, SETTINGS } from './config.js';
export {
  ConfigError,
  InvalidMessageError,
  OutboxError,
  type OutboxErrorCode,
  PublishError,
  type PublishFailureKind,
  UnsupportedExecutorError,
} from './errors.js';
export {
  createLogger,
  type LogDestination,
  type LogFormat,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  silentLogger,
} from './log/logger.js';
export { migrateDown, migrateUp, migrationStatus } from './migrator/migrator.js';
export { type EnqueueOptions, enqueue, MAX_MESSAGES_PER_CALL } from './outbox/enqueue.js';
export type { EnqueuedMessage, InsertedMessage } from './outbox/insert-statements.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  type HeaderValue,
  type OutboxMessage,
} from './outbox/message.js';
export { createOutboxStore, type OutboxStore } from './outbox/outbox-store.js';
export type { OutgoingMessage, Publisher, PublishResult } from './relay/publisher.js';
export {
  type DrainResult,
  type PassResult,
  Relay,
  type RelayDeps,
  type RelayOptions,
} from './relay/relay.js';
export type { TenantGate } from './relay/tenant-gate.js';
export { WakeSignal } from './relay/wake-signal.js';
export { allowAllTenants } from './tenants/allow-all-gate.js';
