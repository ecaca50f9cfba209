/**
 * The writers' wake-up NOTIFY, seen from a listening connection, and enqueue
 * driven through every statement shape that sends it.
 */
import pg from 'pg';
import { expect } from 'vitest';
import type { EnqueueOptions } from '../../src/outbox/enqueue.js';
import type { EnqueuedMessage } from '../../src/outbox/insert-statements.js';
import type { OutboxMessage } from '../../src/outbox/message.js';

/** A connection LISTENing on `channel`, keeping what it hears. */
export interface WakeUpListener {
  /** The channels of the notifications heard so far, after a round trip that delivers any already sent. */
  heard(): Promise<string[]>;
  close(): Promise<void>;
}

export async function listenForWakeUps(url: string, channel: string): Promise<WakeUpListener> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const heard: string[] = [];
  client.on('notification', (n) => heard.push(n.channel));
  await client.query(`listen "${channel}"`);
  return {
    async heard() {
      // A round trip on the listening connection delivers any notification already sent.
      await client.query('select 1');
      return [...heard];
    },
    close: () => client.end(),
  };
}

/**
 * Enqueues with `notify` in all four shapes (one row and three, without and
 * with `returnIds`) through `send`, each in its own transaction, checks the
 * shape of what each call returned, and returns the messages sent and what
 * came back, in order.
 */
export async function enqueueEveryNotifyShape(
  message: (i: number) => OutboxMessage,
  send: (batch: OutboxMessage[], options: EnqueueOptions) => Promise<EnqueuedMessage[]>,
  schema: string,
): Promise<{ sent: OutboxMessage[]; returned: EnqueuedMessage[] }> {
  const sent: OutboxMessage[] = [];
  const returned: EnqueuedMessage[] = [];
  for (const returnIds of [false, true]) {
    for (const count of [1, 3]) {
      const batch = Array.from({ length: count }, (_, i) => message(i));
      sent.push(...batch);
      const result = await send(batch, { schema, notify: true, returnIds });
      expect(result).toStrictEqual(
        batch.map((m) => {
          // enqueue generates the message id a message does not carry.
          const messageId = m.messageId ?? expect.stringMatching(/^[0-9a-f-]{36}$/);
          return returnIds ? { id: expect.stringMatching(/^\d+$/), messageId } : { messageId };
        }),
      );
      returned.push(...result);
    }
  }
  return { sent, returned };
}
