import { describe, expect, it } from 'vitest';
import { isConnectionLoss } from '../../src/db/pool.js';
import { OutboxError } from '../../src/errors.js';

/** An error shaped as node-postgres' DatabaseError: a SQLSTATE and a severity. */
function serverError(code: string, severity = 'FATAL'): Error {
  return Object.assign(new Error(`server error ${code}`), { code, severity });
}

describe('isConnectionLoss', () => {
  it('is true for socket errors, a terminated connection and the SQLSTATEs of a lost session', () => {
    expect(
      isConnectionLoss(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
    ).toBe(true);
    expect(isConnectionLoss(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe(true);
    expect(isConnectionLoss(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionLoss(serverError('57P01'))).toBe(true);
    expect(isConnectionLoss(serverError('08006'))).toBe(true);
  });

  it('is false for a statement that failed, a typed error and anything not an Error', () => {
    expect(isConnectionLoss(serverError('42P01', 'ERROR'))).toBe(false);
    expect(isConnectionLoss(serverError('57014', 'ERROR'))).toBe(false); // statement timeout
    // A server SQLSTATE is never read as a socket code, even one that looks like it.
    expect(isConnectionLoss(serverError('EPIPE', 'ERROR'))).toBe(false);
    expect(isConnectionLoss(new OutboxError('DATABASE_UNAVAILABLE', 'x'))).toBe(false);
    expect(isConnectionLoss(new Error('boom'))).toBe(false);
    expect(isConnectionLoss('ECONNRESET')).toBe(false);
    expect(isConnectionLoss(undefined)).toBe(false);
  });
});
