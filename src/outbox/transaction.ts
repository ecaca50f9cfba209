/**
 * A short transaction on a connection of its own, for the statements that
 * need one (the claim, the backlog read).
 */
import type pg from 'pg';

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
  try {
    await client.query(begin);
    try {
      const result = await work(client);
      await client.query('commit');
      return result;
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    }
  } catch (error) {
    broken = error;
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken instanceof Error ? broken : undefined);
  }
}
