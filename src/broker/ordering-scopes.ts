/**
 * The AMQP publisher's memory of the ordering scopes (a tenant's ordering
 * key) that need care after a failure:
 *
 * - held back: a message of the scope failed collaterally and will be claimed
 *   again at once, so the scope's later messages are not sent until that one
 *   (the lowest such row id) is sent again, or for {@link HOLD_MS} at most: a
 *   retry never comes after a later message of its key;
 * - isolated: a broker close made the scope suspect, so its messages go one
 *   at a time on the isolation lane until one of them gets through.
 *
 * Both are bounded: past {@link MAX_SCOPES} the oldest entries leave first.
 */
import type { PublishError } from '../errors.js';
import type { OutgoingMessage, PublishResult } from '../relay/publisher.js';

/** What the broker closed when a scope became suspect: its channel, or the whole connection. */
export type CloseKind = 'channel' | 'connection';

/** Longest a scope's later messages are held back waiting for an earlier failed one. */
const HOLD_MS = 10_000;

/** Scopes kept held back or in isolation at most (each); the oldest leave first. */
const MAX_SCOPES = 10_000;

/** Sets `key` as the newest entry of `map`; past MAX_SCOPES the oldest goes. */
function setNewest<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_SCOPES) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

/** A message's ordering scope: its tenant and ordering key. */
export function scopeOf(m: OutgoingMessage): string {
  return `${m.tenantId}\u0000${m.orderingScope}`;
}

/** Which ordering scopes are held back or isolated, and until when. */
export class OrderingScopes {
  /** Held-back scopes: the lowest row id that failed collaterally, and when the hold lapses. */
  private readonly held = new Map<string, { minId: bigint; until: number }>();
  /** Isolated scopes: the kind of close that made them suspect, oldest first. */
  private readonly isolated = new Map<string, CloseKind>();
  /** Messages of each isolated scope queued or unconfirmed on the isolation lane. */
  private readonly isolatedInFlight = new Map<string, number>();

  /**
   * Whether `m` (of `scope`) must wait for an earlier failed message of its
   * scope. The hold lifts when it lapses or when that message (or an earlier
   * one) comes again.
   */
  isHeldBack(m: OutgoingMessage, scope: string): boolean {
    const held = this.held.get(scope);
    if (!held) return false;
    if (Date.now() > held.until || BigInt(m.id) <= held.minId) {
      this.held.delete(scope);
      return false;
    }
    return true;
  }

  /**
   * `message` failed with `error`. After a collateral failure (claimed again
   * at once) its scope's later messages are held back until it is sent
   * again. A counted failure backs off, and the claim gives none of its key's
   * later rows meanwhile; holding those would only spin.
   */
  failed(message: OutgoingMessage, error: PublishError): void {
    const scope = scopeOf(message);
    const id = BigInt(message.id);
    const held = this.held.get(scope);
    if (!error.countsAsAttempt && (!held || id < held.minId)) {
      setNewest(this.held, scope, { minId: id, until: Date.now() + HOLD_MS });
    }
  }

  /** The kind of close `scope` is isolated for, or undefined when it is not isolated. */
  isolation(scope: string): CloseKind | undefined {
    return this.isolated.get(scope);
  }

  /** Puts `scope` in isolation (a connection fault outranks a channel fault). */
  isolate(scope: string, kind: CloseKind): void {
    if (this.isolated.get(scope) === 'connection') return;
    // Bounded: the oldest scopes leave first (at worst a suspect closes a channel again).
    setNewest(this.isolated, scope, kind);
  }

  /** A message of isolated `scope` goes to the isolation lane. */
  sendingAlone(scope: string): void {
    this.isolatedInFlight.set(scope, (this.isolatedInFlight.get(scope) ?? 0) + 1);
  }

  /**
   * A message of `scope` sent alone came back with `result`: once one is
   * confirmed, nacked or returned (it closed nothing) and none of the scope
   * is left on the isolation lane, the scope leaves isolation.
   */
  sentAlone(scope: string, result: PublishResult): void {
    const left = (this.isolatedInFlight.get(scope) ?? 1) - 1;
    if (left > 0) this.isolatedInFlight.set(scope, left);
    else this.isolatedInFlight.delete(scope);
    // Confirmed, nacked or returned: this scope closed nothing this time.
    const closedNothing =
      result.ok || result.error.kind === 'nacked' || result.error.kind === 'unroutable';
    if (closedNothing && left <= 0) this.isolated.delete(scope);
  }
}
