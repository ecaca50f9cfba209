import { describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { RetentionCleaner } from '../src/relay/retention-cleaner.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';

const fixture = useOutboxFixture('retention', { resetEachTest: true });

describe('retention of published rows', () => {
  it('keeps published rows, then deletes only the expired ones, in small batches', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 2500);
    const test = await createTestRelay(db, broker.url, { retentionMs: 3_600_000 });
    try {
      expect((await test.relay.drain()).published).toBe(2500);
    } finally {
      await test.close();
    }
    expect(await db.counts()).toMatchObject({ pending: 0, published: 2500 });
    // Age 2,100 of them past a one-hour retention.
    await db.pool.query(
      `update "${db.schema}".messages set published_at = now() - interval '2 hours'
       where id in (select id from "${db.schema}".messages order by id limit 2100)`,
    );
    const cleaner = new RetentionCleaner(db.store, 3_600_000, 60_000, silentLogger);
    // 2,100 expired rows take three statements of at most 1,000.
    expect(await cleaner.runOnce()).toBe(2100);
    expect(await db.counts()).toMatchObject({ published: 400 });
    expect(await cleaner.runOnce()).toBe(0);
  });
});
