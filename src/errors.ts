/**
 * The typed errors outbox-relay throws. Each has a literal `code` that callers
 * can switch on, and wraps its underlying failure as `cause`.
 */

/** Every code an {@link OutboxError} can carry. */
export type OutboxErrorCode =
  | 'INVALID_MESSAGE'
  | 'UNSUPPORTED_EXECUTOR'
  | 'INVALID_CONFIG'
  | 'DATABASE_UNAVAILABLE'
  | 'BROKER_UNAVAILABLE'
  | 'PUBLISH_FAILED'
  | 'MIGRATION_FAILED'
  | 'HTTP_ENDPOINT_FAILED';

/** Base class of all errors raised by outbox-relay. */
export class OutboxError extends Error {
  readonly code: OutboxErrorCode;

  constructor(code: OutboxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A message handed to `enqueue` was rejected before anything was written. */
export class InvalidMessageError extends OutboxError {
  declare readonly code: 'INVALID_MESSAGE';
  /** The offending field, e.g. `tenantId` or `headers.x-count`. */
  readonly field: string;
  /** Position of the message in the array passed to `enqueue` (0 for a single message). */
  readonly index: number;

  constructor(field: string, index: number, reason: string) {
    super('INVALID_MESSAGE', `invalid outbox message #${index}: ${field} ${reason}`);
    this.field = field;
    this.index = index;
  }
}

/**
 * `enqueue` was handed something it cannot run SQL on: not one of the
 * supported clients' transactions. Thrown before anything is written.
 */
export class UnsupportedExecutorError extends OutboxError {
  declare readonly code: 'UNSUPPORTED_EXECUTOR';

  constructor(message: string) {
    super('UNSUPPORTED_EXECUTOR', message);
  }
}

/** A setting from the environment or the command line is invalid. */
export class ConfigError extends OutboxError {
  declare readonly code: 'INVALID_CONFIG';
  /** The environment variable or flag that holds the bad value. */
  readonly variable: string;

  constructor(variable: string, reason: string) {
    super('INVALID_CONFIG', `invalid ${variable}: ${reason}`);
    this.variable = variable;
  }
}

/** Why one message could not be published. */
export type PublishFailureKind =
  | 'unroutable'
  | 'nacked'
  | 'channel-closed'
  | 'connection-lost'
  | 'rejected'
  | 'unpublishable';

/**
 * One message could not be published. `countsAsAttempt` is false for
 * collateral failures (a channel or connection closed under a message that was
 * itself fine): those are retried at once without using up an attempt.
 * `permanent` is true when retrying cannot help (AMQP cannot encode the
 * message, or it is over the broker's size limit): the row goes dead at once.
 */
export class PublishError extends OutboxError {
  declare readonly code: 'PUBLISH_FAILED';
  readonly kind: PublishFailureKind;
  readonly countsAsAttempt: boolean;
  readonly permanent: boolean;

  constructor(
    kind: PublishFailureKind,
    message: string,
    options?: { cause?: unknown; countsAsAttempt?: boolean; permanent?: boolean },
  ) {
    super('PUBLISH_FAILED', message, options);
    this.kind = kind;
    this.permanent = options?.permanent ?? false;
    this.countsAsAttempt = this.permanent || (options?.countsAsAttempt ?? true);
  }
}

/** The message of an unknown thrown value, for logs and `last_error`. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
