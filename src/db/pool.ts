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

/** Fails with DATABASE_UNAVAILABLE, naming the (redacted) URL and the reason, if PostgreSQL cannot be reached. */
export async function checkDatabase(pool: pg.Pool, url: string): Promise<void> {
  try {
    await pool.query('select 1');
  } catch (error) {
    throw new OutboxError(
      'DATABASE_UNAVAILABLE',
      `cannot connect to PostgreSQL at ${redactUrl(url)}: ${describeError(error) || (error as { code?: string }).code || 'connection failed'}`,
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
  try {
    await checkDatabase(pool, config.databaseUrl);
    return await work(pool);
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** Whether `error` is PostgreSQL's undefined_table (42P01): a relation the statement names is missing. */
export function isUndefinedTable(error: unknown): boolean {
  return (error as { code?: unknown } | null | undefined)?.code === '42P01';
}
