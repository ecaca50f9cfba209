/**
 * Honest liveness, on a real `outbox-relay run` process: while another
 * session holds an ACCESS EXCLUSIVE lock on the outbox table, the relay's
 * claim waits on it and the loop makes no progress, so /healthz turns 503
 * after OUTBOX_STALL_TIMEOUT (2 s here), although the database answers and
 * the process serves HTTP; it turns 200 again once the lock is released.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loggedEntry, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { relayPort } from './helpers/http-endpoint.js';
import { enqueueEvents } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('hstall', { resetEachTest: true });

interface Health {
  status: number;
  body: { alive: boolean; status: string; detail: string; lastProgress: string };
}

async function health(port: number): Promise<Health> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: response.status, body: (await response.json()) as Health['body'] };
}

describe('/healthz of a running relay', () => {
  it('turns 503 while a claim hangs on a locked outbox table, and 200 once the lock is released', async () => {
    const { db, broker } = fixture;
    const relay = startCli(
      ['run'],
      cliEnv(fixture, {
        LOG_LEVEL: 'info',
        OUTBOX_HTTP_PORT: '0',
        OUTBOX_HTTP_HOST: '127.0.0.1',
        OUTBOX_STALL_TIMEOUT: '2s',
      }),
    );
    const locker = new pg.Client({ connectionString: db.url });
    locker.on('error', () => undefined);
    try {
      const port = await relayPort(relay);
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 20);
      await waitFor(() => broker.received.length === 20, 'the first events');
      expect(await health(port)).toMatchObject({ status: 200, body: { alive: true } });

      await locker.connect();
      await locker.query('begin');
      await locker.query(`lock table "${db.schema}".messages in access exclusive mode`);
      let stalled: Health | undefined;
      // The next claim (at the latest the 1 s full poll) waits on the lock.
      await waitFor(
        async () => {
          stalled = await health(port);
          return stalled.status === 503;
        },
        '/healthz to answer 503',
        30_000,
      );
      expect(stalled?.body).toMatchObject({ alive: false, status: 'stalled' });
      expect(stalled?.body.detail).toContain('made no progress');
      expect(loggedEntry(relay.output(), 'relay loop stalled')).toBeDefined();

      await locker.query('rollback');
      await waitFor(async () => (await health(port)).status === 200, '/healthz back to 200');
      expect(loggedEntry(relay.output(), 'relay loop making progress again')).toBeDefined();
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 5);
      await waitFor(() => broker.received.length === 25, 'events written after the stall');
    } finally {
      await locker.end().catch(() => undefined);
      if (relay.child.exitCode === null) relay.child.kill('SIGTERM');
    }
    expect(await relay.exited, relay.output()).toBe(0);
  });
});
