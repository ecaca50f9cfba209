/**
 * The port the relay publishes through. The relay knows nothing of AMQP; the
 * adapter in src/broker/ implements this with publisher confirms.
 */
import type { PublishError } from '../errors.js';

/** One message ready for the broker. */
export interface OutgoingMessage {
  /** Outbox row id, for bookkeeping only. */
  id: string;
  messageId: string;
  tenantId: string;
  /** Messages with the same ordering scope must reach the broker in array order. */
  orderingScope: string;
  exchange: string;
  routingKey: string;
  content: Buffer;
  contentType: string;
  type: string | undefined;
  /** Seconds since the epoch. */
  timestamp: number;
  headers: Record<string, unknown>;
}

/** The fate of one message: confirmed by the broker, or failed with a reason. */
export type PublishResult = { ok: true } | { ok: false; error: PublishError };

/** Something that publishes messages and says, per message, whether the broker took it. */
export interface Publisher {
  /**
   * Publishes `messages` and resolves once each is confirmed or has failed;
   * never rejects. A message counts as published only on a broker ack, and a
   * message returned as unroutable fails even though it is acked afterwards.
   */
  publish(messages: readonly OutgoingMessage[]): Promise<PublishResult[]>;
  /** True while connected and able to publish. */
  isReady(): boolean;
  /** Connection detail for readiness and metrics (optional for other publishers). */
  status?(): PublisherStatus;
  /** Waits up to `timeoutMs` for outstanding confirms, then closes. */
  close(timeoutMs: number): Promise<void>;
}

/** What a publisher reports about its broker connection. */
export interface PublisherStatus {
  connected: boolean;
  /** Why the broker blocks publishing (memory or disk alarm), if it does. */
  blocked: string | undefined;
  /** Open channels. */
  channels: number;
}
