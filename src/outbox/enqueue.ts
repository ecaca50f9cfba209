/**
 * The application's side of the outbox: `enqueue` inserts messages in the
 * caller's own transaction. It never opens a transaction or a connection of
 * its own and never touches the broker, so broker trouble cannot reach the
 * write path. By default it sends no NOTIFY either (a NOTIFY takes a
 * database-wide lock at commit); the relay notices new rows on its own.
 */
import { InvalidMessageError } from '../errors.js';
import { SCHEMA_NAME } from '../schema-name.js';
import {
  type EnqueuedMessage,
  type InsertedMessage,
  insertMessages,
  insertStatements,
} from './insert-statements.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  type EncodedMessage,
  encodeMessage,
  type OutboxMessage,
} from './message.js';
import { MAX_NAME_BYTES } from './outbox-tables.js';
import { toSqlExecutor } from './sql-executor.js';
import { activeTraceHeaders } from './trace-context.js';

/** Options of {@link enqueue}. */
export interface EnqueueOptions {
  /** Schema of the outbox table (default `outbox`; match the relay's OUTBOX_SCHEMA). */
  schema?: string;
  /** Largest payload accepted, in bytes (default 1 MiB). */
  maxPayloadBytes?: number;
  /**
   * Also send a NOTIFY so relays wake at once. Off by default: NOTIFY
   * serialises every notifying commit database-wide; use it only at low write
   * concurrency.
   */
  notify?: boolean;
  /**
   * Use named prepared statements (default false). They save PostgreSQL a
   * parse per call, but a transaction pooler (PgBouncer in transaction mode,
   * Supavisor, RDS Proxy) cannot keep them: turn this on only with a direct
   * or session-pooled connection. Only pg and postgres.js (also under Drizzle)
   * can name a statement; the other clients always send unnamed ones.
   */
  preparedStatements?: boolean;
  /**
   * Also return each row's id (default false). The id comes back through
   * RETURNING, which costs every insert: 4–13 % of a one-event business
   * transaction's throughput in the bench's runs, at 1 and at 32 writers
   * (docs/benchmarks.md). Pass it as the literal `true` for the result's type
   * to hold `id`.
   * The message id, returned always, is the event's identity for consumers
   * (the AMQP messageId) and is shown by `outbox-relay dead` beside the row id.
   */
  returnIds?: boolean;
}

/** Most messages one `enqueue` call accepts (one INSERT statement). */
export const MAX_MESSAGES_PER_CALL = 10_000;

function validateOptions(options: EnqueueOptions): {
  schema: string;
  maxPayloadBytes: number;
  notify: boolean;
  preparedStatements: boolean;
  returnIds: boolean;
} {
  const schema = options.schema ?? 'outbox';
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidMessageError(
      'options.schema',
      0,
      `must be a lower-case SQL identifier, got '${schema}'`,
    );
  }
  // PostgreSQL refuses a NOTIFY channel name over MAX_NAME_BYTES: say so
  // before any SQL, not as an error that aborts the caller's transaction.
  const channel = options.notify === true ? insertStatements(schema).tables.notifyChannel : '';
  if (channel.length > MAX_NAME_BYTES) {
    const room = MAX_NAME_BYTES - (channel.length - schema.length);
    throw new InvalidMessageError(
      'options.notify',
      0,
      `needs a schema of at most ${room} characters (the channel '${channel}' is over PostgreSQL's ${MAX_NAME_BYTES} bytes); leave notify off, the relay notices new rows without it`,
    );
  }
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1) {
    throw new InvalidMessageError('options.maxPayloadBytes', 0, 'must be a positive integer');
  }
  return {
    schema,
    maxPayloadBytes,
    notify: options.notify === true,
    preparedStatements: options.preparedStatements === true,
    returnIds: options.returnIds === true,
  };
}

/**
 * Inserts one message or many (in one INSERT) into the outbox, inside the
 * caller's transaction. `executor` is that transaction as the application's
 * client hands it over: a pg Client/PoolClient after `begin`, or a
 * transaction of Kysely, Knex, Drizzle, postgres.js, TypeORM (EntityManager or
 * QueryRunner), Sequelize (the Transaction), MikroORM (the EntityManager) or
 * Prisma. Each is recognised by shape, so the application's own copy of any of
 * these works; anything else throws {@link InvalidMessageError} (field
 * `executor`) saying what it got. A pool or instance outside a transaction is
 * accepted too, and then the rows commit on their own.
 *
 * Every message is validated before anything is sent to the database: an
 * invalid one throws {@link InvalidMessageError} (code `INVALID_MESSAGE`, with
 * the field's name or path, e.g. `payload.items[3].price`, and the message's
 * index) and the transaction stays usable. A value JSON, jsonb or AMQP would
 * change or drop is invalid: see `encodeMessage`.
 *
 * Returns each message's id, in input order, and with `returnIds` also each
 * row's id.
 */
export async function enqueue(
  executor: unknown,
  messages: OutboxMessage | readonly OutboxMessage[],
  options: EnqueueOptions & { returnIds: true },
): Promise<InsertedMessage[]>;
export async function enqueue(
  executor: unknown,
  messages: OutboxMessage | readonly OutboxMessage[],
  options?: EnqueueOptions,
): Promise<EnqueuedMessage[]>;
export async function enqueue(
  executor: unknown,
  messages: OutboxMessage | readonly OutboxMessage[],
  options: EnqueueOptions = {},
): Promise<EnqueuedMessage[]> {
  const db = toSqlExecutor(executor);
  const { schema, maxPayloadBytes, notify, preparedStatements, returnIds } =
    validateOptions(options);
  const list: readonly unknown[] = Array.isArray(messages) ? messages : [messages];
  if (list.length > MAX_MESSAGES_PER_CALL) {
    throw new InvalidMessageError(
      'messages',
      0,
      `holds ${list.length} messages, over ${MAX_MESSAGES_PER_CALL} per call`,
    );
  }
  if (list.length === 0) return [];
  // Inside an OpenTelemetry span, every message carries its traceparent.
  const traceHeaders = activeTraceHeaders();
  const encodeOptions = {
    maxPayloadBytes,
    ...(traceHeaders ? { defaultHeaders: traceHeaders } : {}),
  };
  // An indexed loop, not map: map skips the holes of a sparse array, which
  // would reach the INSERT as NULL rows and abort the caller's transaction.
  const rows: EncodedMessage[] = [];
  for (let index = 0; index < list.length; index++) {
    if (!(index in list)) {
      throw new InvalidMessageError('message', index, 'is missing (a hole in a sparse array)');
    }
    rows.push(encodeMessage(list[index], index, encodeOptions));
  }
  return insertMessages(db, schema, rows, { notify, returnIds, preparedStatements });
}
