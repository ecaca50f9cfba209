import { describe, expect, it } from 'vitest';
import { assertOwnedBroker, ownedPostgresCluster } from './serial/owned-servers.js';

// Only refusals: they change nothing, so they run everywhere. The serial tests
// themselves (OUTBOX_TEST_OWN_SERVERS=1) exercise the accepting side.
describe('the serial tests refuse servers they do not own', () => {
  it("will not restart a PostgreSQL on another machine or on no local cluster's port", async () => {
    await expect(
      ownedPostgresCluster('postgres://postgres@db.example.com:5432/test'),
    ).rejects.toThrow(
      /refusing to restart PostgreSQL: the test database is at db\.example\.com:5432, not on this machine/,
    );
    await expect(ownedPostgresCluster('postgres://postgres@127.0.0.1:1/test')).rejects.toThrow(
      /refusing to restart PostgreSQL: the test database is at 127\.0\.0\.1:1, and no cluster under \/etc\/postgresql uses port 1/,
    );
  });

  it('will not raise a memory alarm on a broker on another machine or another port', () => {
    expect(() => assertOwnedBroker('amqp://guest:guest@10.1.2.3:5672')).toThrow(
      /refusing to raise a memory alarm on RabbitMQ: the test broker is at 10\.1\.2\.3:5672, not on this machine/,
    );
    // Refused whether or not rabbitmqctl answers here: nothing listens for AMQP on port 1.
    expect(() => assertOwnedBroker('amqp://guest:guest@127.0.0.1:1')).toThrow(
      /refusing to raise a memory alarm on RabbitMQ/,
    );
  });
});
