/**
 * The usual setup of an integration test file: its own migrated schema and
 * its own exchange and queue, created before the file's tests and removed
 * after them. Optionally empties both before each test.
 */
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createTestBroker, type TestBroker } from './broker.js';
import { createTestDatabase, type TestDatabase } from './database.js';

/** Filled in by `beforeAll`; read it inside tests and hooks only. */
export interface OutboxFixture {
  db: TestDatabase;
  broker: TestBroker;
}

/** Registers the hooks and returns the fixture they fill in. */
export function useOutboxFixture(
  prefix: string,
  options: { resetEachTest?: boolean } = {},
): OutboxFixture {
  const fixture = {} as OutboxFixture;
  beforeAll(async () => {
    fixture.db = await createTestDatabase(prefix);
    fixture.broker = await createTestBroker(prefix);
  });
  afterAll(async () => {
    await fixture.broker?.close();
    await fixture.db?.drop();
  });
  if (options.resetEachTest) {
    beforeEach(async () => {
      await fixture.db.pool.query(
        `truncate "${fixture.db.schema}".messages, "${fixture.db.schema}".tenant_leases`,
      );
      fixture.broker.received.length = 0;
    });
  }
  return fixture;
}

/** The environment a CLI run needs to reach this file's schema and broker, plus `extra`. */
export function cliEnv(
  { db, broker }: OutboxFixture,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { DATABASE_URL: db.url, AMQP_URL: broker.url, OUTBOX_SCHEMA: db.schema, ...extra };
}
