import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { enqueue } from '../../src/outbox/enqueue.js';
import { startCli } from '../helpers/cli.js';
import { cliEnv, useOutboxFixture } from '../helpers/fixture.js';
import { enqueueEvents, orderEvent } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';
import { type LocalCluster, ownedPostgresCluster } from './owned-servers.js';

const fixture = useOutboxFixture('pgrestart');

/** Runs pg_ctlcluster on `cluster`; a failure's message carries its stderr. */
function pgCtlCluster(cluster: LocalCluster, ...args: string[]): void {
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', cluster.version, 'main', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 120_000,
  });
}

/** Restarts the local cluster; whatever happens, leaves it started. */
function restartPostgres(cluster: LocalCluster): void {
  try {
    pgCtlCluster(cluster, 'restart', '-m', 'fast');
  } finally {
    let running = true;
    try {
      // Exits non-zero unless the cluster is running.
      pgCtlCluster(cluster, 'status');
    } catch {
      running = false;
    }
    if (!running) pgCtlCluster(cluster, 'start');
  }
}

describe('a PostgreSQL restart', () => {
  it('the relay reconnects, LISTEN is re-established, nothing is lost, no crash', async () => {
    const { db, broker } = fixture;
    // Before anything else: the restart must hit the server the tests use, on this machine.
    const cluster = await ownedPostgresCluster(db.url);
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 10_000);
    // No sequence watcher and an hour-long poll: once the backlog is drained,
    // only a NOTIFY (through LISTEN) can wake the relay.
    const relay = startCli(
      ['run'],
      cliEnv(fixture, {
        OUTBOX_WAKE_INTERVAL: '0',
        OUTBOX_POLL_INTERVAL: '1h',
        OUTBOX_BATCH_SIZE: '200',
        LOG_LEVEL: 'warn',
      }),
    );
    try {
      await waitFor(() => broker.received.length >= 2000, 'the first messages', 60_000);
      restartPostgres(cluster);
      await waitFor(
        async () => {
          try {
            await db.pool.query('select 1');
            return true;
          } catch {
            return false;
          }
        },
        'PostgreSQL to accept connections again',
        60_000,
      );
      await waitFor(
        () => broker.distinctIds().size === 20_000,
        'every message after the restart',
        90_000,
      );
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      // The relay is idle now; a notifying enqueue must reach it through LISTEN.
      const [late] = await enqueue(db.pool, orderEvent(broker.exchange, 'acme', 99_999), {
        schema: db.schema,
        notify: true,
      });
      await waitFor(
        () => broker.received.some((m) => m.messageId === late?.messageId),
        'a message announced only by NOTIFY',
        30_000,
      );
      expect(relay.child.exitCode).toBeNull();
      expect(relay.output()).toMatch(/claim failed; retrying|LISTEN connection lost/);
    } finally {
      relay.child.kill('SIGTERM');
    }
    expect(await relay.exited).toBe(0);
  });
});
