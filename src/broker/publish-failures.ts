/**
 * How the AMQP publisher words each way a publish can fail, as the typed
 * {@link PublishError} the relay settles the row by: its kind, whether it
 * counts an attempt (a collateral failure does not: the row is claimed again
 * at once), whether it is permanent (retrying cannot help), and the text that
 * goes to `last_error` and the logs. The lanes and the publisher build every
 * failure here, so one failure always reads the same.
 */
import { describeError, PublishError } from '../errors.js';
import type { OutgoingMessage } from '../relay/publisher.js';

/** The message came after close(): nothing more is sent. */
export function publisherClosed(): PublishError {
  return new PublishError('connection-lost', 'publisher is closed', { countsAsAttempt: false });
}

/** The pre-send check refused it (`reason`): permanent. */
export function unpublishable(m: OutgoingMessage, reason: string): PublishError {
  return new PublishError('unpublishable', `cannot publish message ${m.messageId}: ${reason}`, {
    permanent: true,
  });
}

/** True for amqplib's IllegalOperationError: the channel was closing or closed, not the message's fault. */
function isClosedChannelError(error: unknown): boolean {
  return error instanceof Error && error.name === 'IllegalOperationError';
}

/**
 * amqplib threw from `publish()`. It encodes the whole message before writing
 * any of it, so the channel is as it was: an encoding error is this message's
 * alone, and permanent; a closing channel is nobody's fault.
 */
export function publishThrew(m: OutgoingMessage, error: unknown): PublishError {
  return isClosedChannelError(error)
    ? new PublishError(
        'connection-lost',
        `cannot publish message ${m.messageId}: ${describeError(error)}`,
        { cause: error, countsAsAttempt: false },
      )
    : new PublishError(
        'unpublishable',
        `cannot publish message ${m.messageId}: AMQP cannot encode it: ${describeError(error)}`,
        { cause: error, permanent: true },
      );
}

/** No channel could be opened for the queued messages. */
export function cannotOpenChannel(error: unknown): PublishError {
  return new PublishError('connection-lost', `cannot open a channel: ${describeError(error)}`, {
    cause: error,
    countsAsAttempt: false,
  });
}

/** The broker nacked it. */
export function nacked(m: OutgoingMessage, cause: unknown): PublishError {
  return new PublishError('nacked', `cannot publish message ${m.messageId}: nacked by the broker`, {
    cause,
  });
}

/** The broker returned it (mandatory, `returned` is its reply) and then acked it. */
export function unroutable(m: OutgoingMessage, returned: string): PublishError {
  return new PublishError(
    'unroutable',
    `cannot publish message ${m.messageId}: returned by the broker (${returned}): no queue is bound to exchange '${m.exchange}' with routing key '${m.routingKey}'`,
  );
}

/** A lane gave up its channel after waiting `timeoutMs` for a confirm. */
export function noConfirm(timeoutMs: number): PublishError {
  return new PublishError('connection-lost', `no broker confirm within ${timeoutMs} ms`, {
    countsAsAttempt: false,
  });
}

/** It was unconfirmed when the connection was lost (not closed by a broker error). */
export function connectionLost(m: OutgoingMessage): PublishError {
  return new PublishError(
    'connection-lost',
    `cannot publish message ${m.messageId}: connection to the broker lost`,
    { countsAsAttempt: false },
  );
}

/** Not sent, so that it does not overtake an earlier message of its key (`because`). */
export function heldBack(m: OutgoingMessage, because: string): PublishError {
  return new PublishError(
    'channel-closed',
    `cannot publish message ${m.messageId} yet: ${because}; claimed again in order`,
    { countsAsAttempt: false },
  );
}

/** Queued behind a failed message of its key (`because`): taken off the lane, claimed again after it. */
export function heldBehind(because: string): PublishError {
  return new PublishError(
    'channel-closed',
    `held back: ${because}; retried after it to keep its ordering key in order`,
    { countsAsAttempt: false },
  );
}

/** It made the broker close a channel or the connection (`cause`): counts an attempt. */
export function rejected(m: OutgoingMessage, cause: string): PublishError {
  return new PublishError(
    'rejected',
    `cannot publish message ${m.messageId} to exchange '${m.exchange}' with routing key '${m.routingKey}': ${cause}`,
  );
}

/** One of `suspects` unconfirmed messages made the broker close (`cause`); each is sent again alone. */
export function suspected(m: OutgoingMessage, cause: string, suspects: number): PublishError {
  return new PublishError(
    'channel-closed',
    `cannot publish message ${m.messageId}: ${cause}; one of ${suspects} unconfirmed messages caused it, so each is sent again alone`,
    { countsAsAttempt: false },
  );
}
