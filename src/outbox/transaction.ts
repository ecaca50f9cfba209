/**
 * A short transaction on a connection of its own, for the statements that
 * need one (the claim, the backlog read).
 */
import type pg from 'pg';

/** What a transaction's work returned, and its commit, sent and still under way. */
export interface CommitUnderWay<T> {
  result: T;
  /**
   * Settles once the commit did: resolves when it succeeded, rejects when it
   * failed (the transaction's writes are then gone). The connection goes back
   * to the pool first. Whoever needs the outcome awaits it; left unawaited,
   * a failure is not reported as an unhandled rejection.
   */
  committed: Promise<void>;
  /** Whether the commit is known to have failed by now (`committed` rejected). */
  commitFailed(): boolean;
}

/**
 * Runs `work` in a transaction on a connection of its own: `begin` (one
 * simple-protocol text that opens the transaction and sets it up), `work`,
 * commit; rollback on failure. A connection that failed in any way is
 * discarded, not reused.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  begin: string,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const { result, committed } = await inTransactionCommitUnderWay(pool, begin, work);
  await committed;
  return result;
}

/**
 * {@link inTransaction}, but it returns as soon as `work` has: the commit is
 * sent then, and `committed` tells how it went. The caller can act on the
 * result during the commit's round trip (and its WAL flush); what it does
 * meanwhile must not depend on the transaction's writes being durable.
 */
export async function inTransactionCommitUnderWay<T>(
  pool: pg.Pool,
  begin: string,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<CommitUnderWay<T>> {
  const client = await pool.connect();
  let broken: unknown;
  // pg's pool listens for errors only on idle clients: a connection that dies
  // while checked out (terminated, network lost) between two statements would
  // emit an 'error' nobody handles and take the process down. createPool's
  // pools listen already; an application's own pool may not.
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  const release = () => {
    client.off('error', onError);
    client.release(broken instanceof Error ? broken : undefined);
  };
  let result: T;
  try {
    await client.query(begin);
    try {
      result = await work(client);
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    }
  } catch (error) {
    broken = error;
    release();
    throw error;
  }
  const committed = client.query('commit').then(
    () => release(),
    (error: unknown) => {
      broken = error;
      release();
      throw error;
    },
  );
  let failed = false;
  committed.catch(() => {
    failed = true;
  });
  return { result, committed, commitFailed: () => failed };
}
