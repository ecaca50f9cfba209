import { describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { publishFlag } from './helpers/flags.js';
import { enqueueEvents, orderEvent } from './helpers/messages.js';
import { startStreamingServer } from './helpers/streaming-server.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('everyfailure');

describe('one relay process, every kind of failure in turn', () => {
  it('a channel error, a broker connection reset, lost database connections and a cut flag stream: no crash, nothing lost', async () => {
    const { db, broker } = fixture;
    const proxy = await proxyFor(broker.url);
    const flags = await startStreamingServer([publishFlag([])]);
    const tenants = ['acme', 'globex'];
    await enqueueEvents(db.pool, db.schema, broker.exchange, tenants, 10_000);
    // A message for an exchange that does not exist: its channel is closed by the broker (404).
    await enqueue(db.pool, orderEvent('no-such-exchange', 'initech', 1), { schema: db.schema });
    const relay = startCli(
      ['run'],
      cliEnv(fixture, {
        AMQP_URL: proxy.url,
        OUTBOX_BATCH_SIZE: '200',
        LAUNCHDARKLY_SDK_KEY: 'sdk-local',
        LAUNCHDARKLY_BASE_URI: flags.uri,
        LAUNCHDARKLY_STREAM_URI: flags.uri,
        LAUNCHDARKLY_EVENTS_URI: flags.uri,
        LAUNCHDARKLY_SEND_EVENTS: 'false',
        LOG_LEVEL: 'info',
      }),
    );
    try {
      await waitFor(() => broker.distinctIds(tenants).size >= 2000, 'the first messages', 60_000);
      // The broker connection drops.
      proxy.reset();
      await waitFor(
        () => broker.distinctIds(tenants).size >= 5000,
        'publishing after the reset',
        60_000,
      );
      // Every PostgreSQL connection of this relay is terminated.
      await db.pool.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
         where application_name like 'outbox-relay%' and query like '%' || $1 || '%' and pid <> pg_backend_pid()`,
        [db.schema],
      );
      // The LaunchDarkly stream is cut (the SDK reconnects by itself).
      await flags.close();
      await waitFor(() => broker.distinctIds(tenants).size === 20_000, 'every message', 90_000);
      // The reset forced a reconnect through the proxy.
      expect(proxy.accepted()).toBeGreaterThanOrEqual(2);
      expect(relay.child.exitCode).toBeNull();
      // The missing exchange counted an attempt and waits in backoff; nothing else is left
      // once the last batches are settled (consumers can see them before their delete).
      await waitFor(
        async () =>
          (
            await db.pool.query(
              `select count(*)::int as n from "${db.schema}".messages where tenant_id <> 'initech'`,
            )
          ).rows[0].n === 0,
        'the other rows to be settled',
      );
      const { rows } = await db.pool.query(
        `select tenant_id, attempts, last_error from "${db.schema}".messages where dead_at is null`,
      );
      expect(rows).toEqual([
        expect.objectContaining({
          tenant_id: 'initech',
          last_error: expect.stringMatching(/no-such-exchange/),
        }),
      ]);
      expect(rows[0].attempts).toBeGreaterThanOrEqual(1);
      expect(relay.output()).not.toMatch(/unhandled|Uncaught|throw er/);
    } finally {
      relay.child.kill('SIGTERM');
      await proxy.close();
      await flags.close().catch(() => undefined);
    }
    // On a failure, the relay's last output says why it exited as it did.
    expect(await relay.exited, relay.output().slice(-4000)).toBe(0);
  });
});
