/**
 * The naive relay users would write first, as the peer to beat:
 * SELECT … FOR UPDATE SKIP LOCKED LIMIT 100, publish each row and wait for its
 * confirm, DELETE, COMMIT — holding the transaction open across the broker.
 */
import type { OutboxRow } from './cheapest-relay.js';
import type { BenchEnv } from './harness.js';

type Row = Omit<OutboxRow, 'headers' | 'created_s'> & { id: string };

/** Drains the outbox in `schema` the naive way; returns how many rows it published. */
export async function naiveDrain(env: BenchEnv, schema: string): Promise<number> {
  const client = await env.pool.connect();
  const channel = await env.amqp.createConfirmChannel();
  channel.on('error', () => undefined);
  let published = 0;
  try {
    for (;;) {
      await client.query('begin');
      const { rows } = await client.query<Row>(
        `select id, message_id, tenant_id, exchange, routing_key, message_type, payload, content_type
         from "${schema}".messages order by id limit 100 for update skip locked`,
      );
      if (rows.length === 0) {
        await client.query('commit');
        return published;
      }
      for (const row of rows) {
        await new Promise<void>((resolve, reject) => {
          channel.publish(
            row.exchange,
            row.routing_key,
            row.payload,
            {
              persistent: true,
              messageId: row.message_id,
              contentType: row.content_type,
              type: row.message_type ?? undefined,
              headers: { 'x-tenant-id': row.tenant_id },
            },
            (error: unknown) => (error ? reject(error) : resolve()),
          );
        });
      }
      await client.query(`delete from "${schema}".messages where id = any($1::bigint[])`, [
        rows.map((r) => r.id),
      ]);
      await client.query('commit');
      published += rows.length;
    }
  } finally {
    await channel.close().catch(() => undefined);
    client.release();
  }
}
