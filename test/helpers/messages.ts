/**
 * Small factories for outbox messages.
 */
import type pg from 'pg';
import { enqueue } from '../../src/outbox/enqueue.js';
import type { OutboxMessage } from '../../src/outbox/message.js';

/** One order event for `tenantId`; `seq` goes into the payload so order can be checked. */
export function orderEvent(
  exchange: string,
  tenantId: string,
  seq: number,
  extra: Partial<OutboxMessage> = {},
): OutboxMessage {
  return {
    tenantId,
    exchange,
    routingKey: `orders.${tenantId}`,
    type: 'order.created',
    payload: { tenantId, seq },
    ...extra,
  };
}

/**
 * Enqueues `perTenant` events for each of `tenants`, interleaved, in committed
 * chunks. Returns the message ids per tenant, in enqueue order.
 */
export async function enqueueEvents(
  pool: pg.Pool,
  schema: string,
  exchange: string,
  tenants: readonly string[],
  perTenant: number,
  chunk = 1000,
): Promise<Map<string, string[]>> {
  const all: OutboxMessage[] = [];
  for (let seq = 0; seq < perTenant; seq++) {
    for (const tenant of tenants) all.push(orderEvent(exchange, tenant, seq));
  }
  const ids = new Map<string, string[]>(tenants.map((t) => [t, []]));
  const client = await pool.connect();
  try {
    for (let i = 0; i < all.length; i += chunk) {
      const slice = all.slice(i, i + chunk);
      await client.query('begin');
      const inserted = await enqueue(client, slice, { schema });
      await client.query('commit');
      inserted.forEach((row, j) => {
        ids.get((slice[j] as OutboxMessage).tenantId)?.push(row.messageId);
      });
    }
  } finally {
    client.release();
  }
  return ids;
}
