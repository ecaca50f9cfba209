/**
 * Settles the messages a closed channel or connection left unconfirmed, and
 * finds which of them made the broker close it.
 *
 * A broker error that closes a channel or the connection names no message
 * (and its text is cut at 255 bytes), so the culprit is found by isolation,
 * never by matching names: when the close leaves exactly one message
 * unconfirmed on that channel (for a channel error) or on the whole
 * connection (for a connection error), that message is the culprit and counts
 * an attempt. Otherwise every unconfirmed message is a suspect: each fails
 * without counting an attempt, and its ordering scope is isolated, so its
 * messages are sent again one at a time on the isolation lane (its own
 * channel). Suspects of a connection error are sent while nothing else is
 * unconfirmed on the connection. The next close then has one message to
 * blame; a scope leaves isolation once a message of it is confirmed. A 404
 * (missing exchange) is the exception: the broker is asked which exchange is
 * missing, which names the culprit at once.
 */
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { AmqpConnection } from './amqp-connection.js';
import type { ChannelCloseError, LostMessage } from './confirm-lane.js';
import { type CloseKind, type OrderingScopes, scopeOf } from './ordering-scopes.js';
import { connectionLost, heldBack, rejected, suspected, unroutable } from './publish-failures.js';

/** AMQP reply code of a missing exchange. */
const NOT_FOUND = 404;

/** Options of {@link CloseCulprits}. */
export interface CloseCulpritsOptions {
  connection: AmqpConnection;
  scopes: OrderingScopes;
  logger: Logger;
  /** Fails the messages of `scopes` still queued on the lanes: they would overtake the retries. */
  holdBack(scopes: ReadonlySet<string>, because: string): void;
}

/** Blames, or suspects, the messages lost when the broker closed a channel or the connection. */
export class CloseCulprits {
  /** Messages left unconfirmed by channels closed under the connection's closing fault. */
  private readonly casualties: LostMessage[] = [];

  constructor(private readonly options: CloseCulpritsOptions) {}

  /**
   * A lane's channel closed with `lost` unconfirmed; `channelError` is set
   * when the broker closed that channel itself. `alone` says the lane sends
   * one message at a time (the isolation lane), so a broker close is that
   * message's doing.
   */
  channelClosed(
    lost: readonly LostMessage[],
    channelError: ChannelCloseError | undefined,
    alone: boolean,
  ): void {
    if (channelError && typeof channelError.code === 'number') {
      const cause = `the broker closed its channel: ${describeError(channelError)}`;
      if (alone || lost.length === 1) this.blame(lost, 'channel', cause);
      else if (channelError.code === NOT_FOUND) void this.findMissingExchange(lost, cause);
      else this.suspect(lost, 'channel', cause);
      return;
    }
    if (this.options.connection.closingFault) {
      // Decided on the connection's 'close', once every channel has handed its messages over.
      this.casualties.push(...lost);
      return;
    }
    for (const { message, settle } of lost) settle({ ok: false, error: connectionLost(message) });
  }

  /** The connection closed with a broker error: blame its one unconfirmed message, or isolate them all. */
  connectionClosedWithFault(fault: Error): void {
    const lost = this.casualties.splice(0);
    if (lost.length === 0) return;
    const cause = `the broker closed the connection: ${describeError(fault)}`;
    if (lost.length === 1) this.blame(lost, 'connection', cause);
    else this.suspect(lost, 'connection', cause);
  }

  /**
   * A 404 closed a channel under several messages. The broker handles a
   * channel's publishes in order and stops at the first to a missing
   * exchange, so asking it which of their exchanges exist (a passive declare
   * each, on a channel of its own, in publish order) names the culprit
   * exactly: the first message to a missing exchange. The messages before it
   * were routed (or returned) and count as published, so nothing is sent
   * twice; those after it were never handled and go back to pending. If no
   * exchange is missing any more, the suspects are sent again alone.
   */
  private async findMissingExchange(lost: readonly LostMessage[], cause: string): Promise<void> {
    // Meanwhile, nothing of these keys may overtake them.
    this.options.holdBack(
      new Set(lost.map(({ message }) => scopeOf(message))),
      'an earlier message of the same ordering key was on a channel the broker closed',
    );
    const checked = new Map<string, boolean>();
    let culprit = -1;
    try {
      for (let i = 0; i < lost.length && culprit < 0; i++) {
        const exchange = (lost[i] as LostMessage).message.exchange;
        if (!checked.has(exchange)) checked.set(exchange, await this.exchangeExists(exchange));
        if (checked.get(exchange) === false) culprit = i;
      }
    } catch {
      culprit = -1;
    }
    if (culprit < 0) {
      this.suspect(lost, 'channel', cause);
      return;
    }
    lost.forEach((item, i) => {
      if (i < culprit) {
        item.settle(
          item.returned === undefined
            ? { ok: true }
            : { ok: false, error: unroutable(item.message, item.returned) },
        );
      } else if (i === culprit) {
        this.blame([item], 'channel', cause);
      } else {
        const because = 'it was on a channel an earlier message made the broker close';
        item.settle({ ok: false, error: heldBack(item.message, because) });
      }
    });
  }

  /** Whether `exchange` exists, by a passive declare on a throwaway channel. */
  private async exchangeExists(exchange: string): Promise<boolean> {
    if (exchange === '') return true;
    const connection = await this.options.connection.get();
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      await channel.checkExchange(exchange);
      return true;
    } catch (error) {
      if ((error as { code?: unknown }).code === NOT_FOUND) return false;
      throw error;
    } finally {
      await channel.close().catch(() => undefined);
    }
  }

  /** `lost` holds exactly the message that made the broker close: it counts an attempt. */
  private blame(lost: readonly LostMessage[], kind: CloseKind, cause: string): void {
    for (const { message, settle } of lost) {
      // Settling it holds back its key's queued messages (the publisher's failed()).
      this.options.scopes.isolate(scopeOf(message), kind);
      this.options.logger.warn('message refused by the broker', {
        messageId: message.messageId,
        tenantId: message.tenantId,
        cause,
      });
      settle({ ok: false, error: rejected(message, cause) });
    }
  }

  /** One of `lost` made the broker close: retry each alone, without counting an attempt. */
  private suspect(lost: readonly LostMessage[], kind: CloseKind, cause: string): void {
    this.options.logger.warn(
      'broker closed a channel under several messages; sending them again one at a time',
      {
        suspects: lost.length,
        cause,
      },
    );
    // Settling each holds back its key's queued messages (the publisher's failed()).
    for (const { message, settle } of lost) {
      this.options.scopes.isolate(scopeOf(message), kind);
      settle({ ok: false, error: suspected(message, cause, lost.length) });
    }
  }
}
