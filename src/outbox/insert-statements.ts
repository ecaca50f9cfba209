/**
 * The write path's statements: inserting rows, optionally with a wake-up
 * NOTIFY in the same statement. `enqueue` runs them on the application's own
 * transaction, so this file stays light (no pool, no file reads): it is what
 * `outbox-relay/enqueue` loads. The statement texts are built once per schema
 * and shared by `enqueue` and the outbox store.
 */
import type { EncodedMessage } from './message.js';
import { type OutboxTables, perSchema } from './outbox-tables.js';
import { compareIds } from './row-id.js';
import type { SqlExecutor } from './sql-executor-port.js';

/** The insert statements of one schema. */
export interface InsertStatements {
  readonly tables: OutboxTables;
  /** Many rows: `INSERT … SELECT FROM unnest($1 … $9)`. */
  readonly insert: string;
  readonly insertAndNotify: string;
  /** One row: `INSERT … VALUES ($1 … $9)`. */
  readonly insertOne: string;
  readonly insertOneAndNotify: string;
}

const COLUMNS =
  'message_id, tenant_id, ordering_key, exchange, routing_key, message_type, payload, content_type, headers';
const UNNEST =
  'select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[], $9::jsonb[])';

/** The insert statements of `schema` (a validated identifier), built on first use. */
export const insertStatements = perSchema((tables): InsertStatements => {
  const t = tables.messages;
  return {
    tables,
    // Returned columns are one lower-case word each (id, mid): clients that
    // rename result columns (postgres.js transform, Knex postProcessResponse,
    // Kysely CamelCasePlugin) leave them as they are.
    insert: `insert into ${t} (${COLUMNS}) ${UNNEST} returning id::text as id, message_id::text as mid`,
    // One message, the common case: plain VALUES, so the payload travels as a
    // binary parameter (pg sends bytea[] elements as hex text). It returns
    // only the id: the caller knows the one message id it sent, and every
    // returned column costs the server a little on each insert.
    insertOne: `insert into ${t} (${COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      returning id::text as id`,
    insertOneAndNotify: `with inserted as (insert into ${t} (${COLUMNS})
        values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id),
      notified as (select pg_notify($10, ''))
      select inserted.id::text as id from inserted cross join notified`,
    insertAndNotify: `with inserted as (insert into ${t} (${COLUMNS}) ${UNNEST} returning id, message_id),
      notified as (select pg_notify($10, ''))
      select inserted.id::text as id, inserted.message_id::text as mid from inserted cross join notified`,
  };
});

/** What `insertMessages` returns per row, in input order. */
export interface InsertedMessage {
  /** The row's id (a bigint, as a decimal string). */
  id: string;
  messageId: string;
}

/**
 * Inserts rows into the outbox of `schema` in one statement, on `db` (the
 * caller's transaction); optionally sends a wake-up NOTIFY in the same statement.
 */
export async function insertMessages(
  db: SqlExecutor,
  schema: string,
  rows: readonly EncodedMessage[],
  options: { notify: boolean; preparedStatements?: boolean },
): Promise<InsertedMessage[]> {
  const statements = insertStatements(schema);
  const { notifyChannel } = statements.tables;
  // Unnamed by default: a transaction pooler (PgBouncer in transaction mode,
  // Supavisor, RDS Proxy) cannot keep a named statement on one client.
  const named = (name: string) => (options.preparedStatements ? name : undefined);
  if (rows.length === 1) {
    const r = rows[0] as EncodedMessage;
    const values: unknown[] = [
      r.messageId,
      r.tenantId,
      r.orderingKey,
      r.exchange,
      r.routingKey,
      r.messageType,
      r.payload,
      r.contentType,
      r.headers,
    ];
    if (options.notify) values.push(notifyChannel);
    const [row] = await db.run<{ id: string }>(
      options.notify ? statements.insertOneAndNotify : statements.insertOne,
      values,
      named(`outbox_insert_one_${options.notify ? 'notify_' : ''}${schema}`),
    );
    return [{ id: row?.id ?? '', messageId: r.messageId }];
  }
  const values: unknown[] = [
    rows.map((r) => r.messageId),
    rows.map((r) => r.tenantId),
    rows.map((r) => r.orderingKey),
    rows.map((r) => r.exchange),
    rows.map((r) => r.routingKey),
    rows.map((r) => r.messageType),
    rows.map((r) => r.payload),
    rows.map((r) => r.contentType),
    rows.map((r) => r.headers),
  ];
  const text = options.notify ? statements.insertAndNotify : statements.insert;
  if (options.notify) values.push(notifyChannel);
  const inserted = await db.run<{ id: string; mid: string }>(
    text,
    values,
    named(`outbox_insert_${options.notify ? 'notify_' : ''}${schema}`),
  );
  // Map back by message id so the result follows the input order whatever
  // order RETURNING used; a message id given twice maps in id order.
  const byMessageId = new Map<string, string[]>();
  for (const row of [...inserted].sort((a, b) => compareIds(a.id, b.id))) {
    const ids = byMessageId.get(row.mid) ?? [];
    ids.push(row.id);
    byMessageId.set(row.mid, ids);
  }
  return rows.map((r) => ({
    id: byMessageId.get(r.messageId)?.shift() ?? '',
    messageId: r.messageId,
  }));
}
