/**
 * PostgreSQL connection pools for the CLI and the relay, and the start-up
 * check that turns "cannot connect" into one clear line.
 */
import pg from 'pg';
import type { Config } from '../config.js';
import { describeError, OutboxError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { redactUrl } from '../redact-url.js';

/** Options of {@link createPool}. */
export interface PoolOptions {
  url: string;
  max: number;
  connectTimeoutMs: number;
  applicationName: string;
  /** Called for errors on idle clients, which pg would otherwise throw as unhandled. */
  onError: (error: Error) => void;
}

/** A pg Pool with an error listener attached, so a dropped idle connection never kills the process. */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName,
    keepAlive: true,
  });
  pool.on('error', options.onError);
  // pg's pool listens for errors only on idle clients: a connection that dies
  // while checked out (terminated, network lost) would emit an 'error' nobody
  // handles and take the process down. The borrower's next query fails
  // instead, and the pool discards the dead connection on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** What a connection error says: its message, else its code (some socket errors have no message). */
function connectionFailure(error: unknown): string {
  return describeError(error) || (error as { code?: string }).code || 'connection failed';
}

/** Fails with DATABASE_UNAVAILABLE, naming the (redacted) URL and the reason, if PostgreSQL cannot be reached. */
export async function checkDatabase(pool: pg.Pool, url: string): Promise<void> {
  try {
    await pool.query('select 1');
  } catch (error) {
    throw new OutboxError(
      'DATABASE_UNAVAILABLE',
      `cannot connect to PostgreSQL at ${redactUrl(url)}: ${connectionFailure(error)}`,
      { cause: error },
    );
  }
}

/**
 * For one-shot commands: opens a small pool, checks the database is reachable
 * (one clear DATABASE_UNAVAILABLE error if not), runs `work`, always closes.
 */
export async function withCommandPool<T>(
  config: Pick<Config, 'databaseUrl' | 'connectTimeoutMs'>,
  command: string,
  logger: Logger,
  work: (pool: pg.Pool) => Promise<T>,
): Promise<T> {
  const pool = createPool({
    url: config.databaseUrl,
    max: 2,
    connectTimeoutMs: config.connectTimeoutMs,
    applicationName: `outbox-relay ${command}`,
    onError: (error) => logger.warn('idle database connection failed', { error }),
  });
  // Set when a connection of this pool closes while the command runs: a
  // socket error (ECONNRESET, ENOENT …) may come from elsewhere (the flag
  // store, a flags file), and only this tells PostgreSQL's apart.
  let connectionClosed = false;
  pool.on('connect', (client) => client.on('end', () => (connectionClosed = true)));
  try {
    await checkDatabase(pool, config.databaseUrl);
    try {
      return await work(pool);
    } catch (error) {
      if (!isConnectionLoss(error)) throw error;
      if (!isServerError(error)) {
        // The query fails first; its connection's 'end' follows in the same turn of I/O.
        await new Promise((resolve) => setImmediate(resolve));
        if (!connectionClosed) throw error;
      }
      // Say which service went away, and that a change the command made may
      // have been committed before it did (a purge that deleted its rows).
      throw new OutboxError(
        'DATABASE_UNAVAILABLE',
        `lost the connection to PostgreSQL at ${redactUrl(config.databaseUrl)} during \`outbox-relay ${command}\` (${connectionFailure(error)}): whether its last statement took effect is unknown; check before running it again`,
        { cause: error },
      );
    }
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** SQLSTATEs of a lost connection: class 08 (connection exception) and 57P01–57P03 (the server ending sessions). */
const CONNECTION_LOSS_STATES = /^(08...|57P0[123])$/;

/** An error PostgreSQL itself sent (node-postgres' DatabaseError: a SQLSTATE and a severity). */
function isServerError(error: unknown): boolean {
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return typeof code === 'string' && typeof severity === 'string';
}

/**
 * Whether `error` says the connection to PostgreSQL was lost, rather than
 * that a statement failed: a socket error (ECONNRESET, EPIPE, ETIMEDOUT …),
 * node-postgres' "Connection terminated", or a server SQLSTATE of a lost
 * session. Typed errors of outbox-relay are never one.
 */
export function isConnectionLoss(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof OutboxError) return false;
  const code = (error as { code?: unknown }).code;
  if (isServerError(error)) return CONNECTION_LOSS_STATES.test(code as string);
  if (typeof code === 'string') return /^E[A-Z]+$/.test(code);
  return /^Connection terminated/.test(error.message);
}

/** Whether `error` is PostgreSQL's undefined_table (42P01): a relation the statement names is missing. */
export function isUndefinedTable(error: unknown): boolean {
  return (error as { code?: unknown } | null | undefined)?.code === '42P01';
}
