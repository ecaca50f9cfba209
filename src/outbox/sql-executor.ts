/**
 * Runs outbox SQL on whatever the caller hands us: a Kysely instance or
 * transaction, or anything shaped like a node-postgres client (Client,
 * PoolClient, Pool). Executors are recognised by shape, never `instanceof`:
 * the application may use its own copy of pg or kysely.
 */
import { CompiledQuery } from 'kysely';

/** The minimal surface outbox SQL needs: one parameterised statement, rows back. */
export interface SqlExecutor {
  run<Row>(text: string, values: readonly unknown[], name?: string): Promise<Row[]>;
}

interface PgShaped {
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[] }>;
}

interface KyselyShaped {
  executeQuery(query: CompiledQuery): Promise<{ rows: unknown[] }>;
  selectFrom: unknown;
}

function isKysely(value: unknown): value is KyselyShaped {
  const candidate = value as Partial<KyselyShaped> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.executeQuery === 'function' &&
    typeof candidate.selectFrom === 'function'
  );
}

function isPg(value: unknown): value is PgShaped {
  const candidate = value as Partial<PgShaped> | null;
  return (
    typeof candidate === 'object' && candidate !== null && typeof candidate.query === 'function'
  );
}

/** True when `value` can run outbox SQL (a Kysely executor or a pg-shaped client). */
export function isSqlExecutorLike(value: unknown): boolean {
  return isKysely(value) || isPg(value);
}

/**
 * Wraps a Kysely executor or pg-shaped client. Throws a TypeError for anything
 * else; callers validate before they get here.
 */
export function toSqlExecutor(value: unknown): SqlExecutor {
  if (isKysely(value)) {
    return {
      async run<Row>(text: string, values: readonly unknown[]): Promise<Row[]> {
        const result = await value.executeQuery(CompiledQuery.raw(text, [...values]));
        return result.rows as Row[];
      },
    };
  }
  if (isPg(value)) {
    return {
      async run<Row>(text: string, values: readonly unknown[], name?: string): Promise<Row[]> {
        const config =
          name === undefined ? { text, values: [...values] } : { text, values: [...values], name };
        const result = await value.query(config);
        return result.rows as Row[];
      },
    };
  }
  throw new TypeError(
    'expected a Kysely instance or transaction, or a pg Client/PoolClient (an object with a query method)',
  );
}
