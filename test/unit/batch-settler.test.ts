/**
 * Sorting a batch's publish results: the broker's answer for message i is
 * about row i; confirmed rows are recorded as published, failed ones with
 * their error, whether the attempt counts, and whether the failure is
 * permanent.
 */
import { describe, expect, it } from 'vitest';
import { PublishError } from '../../src/errors.js';
import type { ClaimedRow } from '../../src/outbox/claim.js';
import { sortResults } from '../../src/relay/batch-settler.js';
import type { PublishResult } from '../../src/relay/publisher.js';

function row(id: string, createdMs: number): ClaimedRow {
  return { id, created_ms: createdMs } as ClaimedRow;
}

describe('sorting publish results', () => {
  it('pairs each result with its row, in order', () => {
    const rows = [row('1', 1_000), row('2', 2_000), row('3', 3_000)];
    const results: PublishResult[] = [
      { ok: true },
      { ok: false, error: new PublishError('unroutable', 'no queue bound') },
      { ok: true },
    ];
    expect(sortResults(rows, results)).toEqual({
      published: ['1', '3'],
      publishedCreatedAt: [new Date(1_000), new Date(3_000)],
      failures: [{ id: '2', error: 'no queue bound', countsAsAttempt: true, permanent: false }],
      failureKinds: ['unroutable'],
    });
  });

  it('records nothing for a batch with nothing published', () => {
    expect(sortResults([], [])).toEqual({
      published: [],
      publishedCreatedAt: [],
      failures: [],
      failureKinds: [],
    });
  });
});
