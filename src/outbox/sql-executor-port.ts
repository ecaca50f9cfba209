/**
 * The one thing outbox SQL asks of a database client. A file of its own so
 * that the store, which runs statements on it, and the client adapters, which
 * implement it, both depend on it without depending on each other
 * (src/outbox/sql-executor.ts recognises a client and picks its adapter).
 */

/** The minimal surface outbox SQL needs: one parameterised statement, rows back. */
export interface SqlExecutor {
  /** Runs `text` with `$1`… `values`; a `name` asks for a named prepared statement. */
  run<Row>(text: string, values: readonly unknown[], name?: string): Promise<Row[]>;
}
