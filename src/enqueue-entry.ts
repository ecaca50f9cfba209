/**
 * `outbox-relay/enqueue`: the application's side of the outbox, on its own.
 * An application that only writes messages imports this entry and loads
 * `enqueue` and what it needs, none of the relay's broker, logging, metrics
 * or feature-flag libraries (amqplib, pino, prom-client, LaunchDarkly):
 * test/module-loading.test.ts pins that. The package root, `outbox-relay`,
 * exports the same `enqueue` and everything needed to embed the relay.
 */
export {
  InvalidMessageError,
  OutboxError,
  type OutboxErrorCode,
  UnsupportedExecutorError,
} from './errors.js';
export { type EnqueueOptions, enqueue, MAX_MESSAGES_PER_CALL } from './outbox/enqueue.js';
export type { EnqueuedMessage, InsertedMessage } from './outbox/insert-statements.js';
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  type HeaderValue,
  type OutboxMessage,
} from './outbox/message.js';
