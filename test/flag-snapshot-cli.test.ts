/**
 * The kill switch remembers, end to end: `outbox-relay run` as ops run it,
 * the real LaunchDarkly SDK pointed at a local streaming server, PostgreSQL
 * and RabbitMQ. A relay restarted while LaunchDarkly is unreachable keeps
 * holding the tenants LaunchDarkly last paused (by target, and by a rule for a
 * tenant it never met) from the flags it saved in the outbox schema.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import type { OutboxMessage } from '../src/outbox/message.js';
import { environmentOf } from '../src/tenants/flag-snapshot-store.js';
import { type CliProcess, loggedEntry, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { publishFlag, publishFlagWithRules } from './helpers/flags.js';
import { loggedHttpPort, readiness, sampleValue, scrapeMetrics } from './helpers/http-endpoint.js';
import { orderEvent } from './helpers/messages.js';
import { type StreamingServer, startStreamingServer } from './helpers/streaming-server.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('flag_snapshot_cli');

const SAVED_FLAGS_APPLY = 'tenant flags unavailable: applying the flags saved before';

/** `outbox-relay run` with default settings, LaunchDarkly at `port` and an HTTP endpoint on a free port. */
function startRelay(sdkKey: string, port: number): CliProcess {
  const uri = `http://127.0.0.1:${port}`;
  return startCli(
    ['run'],
    cliEnv(fixture, {
      LAUNCHDARKLY_SDK_KEY: sdkKey,
      LAUNCHDARKLY_BASE_URI: uri,
      LAUNCHDARKLY_STREAM_URI: uri,
      LAUNCHDARKLY_EVENTS_URI: uri,
      LAUNCHDARKLY_SEND_EVENTS: 'false',
      OUTBOX_FLAGS_INIT_TIMEOUT: '1s',
      // The relay's own default (the CLI helper lowers it to warn): the info lines are asserted.
      LOG_LEVEL: 'info',
      OUTBOX_HTTP_PORT: '0',
    }),
  );
}

/** SIGTERM, then the exit code; SIGKILL and fail if it takes longer than `timeoutMs`. */
async function stop(relay: CliProcess, timeoutMs = 30_000): Promise<number | null> {
  relay.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      relay.child.kill('SIGKILL');
      reject(new Error(`the relay did not exit within ${timeoutMs}ms of SIGTERM`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([relay.exited, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Kills a relay still running (a failed test); a no-op once it has exited. */
function kill(relay: CliProcess | undefined): void {
  if (relay && relay.child.exitCode === null && relay.child.signalCode === null) {
    relay.child.kill('SIGKILL');
  }
}

/** Commits events `from`..`from + count - 1` (payload seq) for each tenant, interleaved, in one statement. */
async function enqueueSeqs(ranges: Record<string, { from: number; count: number }>): Promise<void> {
  const { db, broker } = fixture;
  const events: OutboxMessage[] = [];
  const longest = Math.max(...Object.values(ranges).map((range) => range.count));
  for (let i = 0; i < longest; i++) {
    for (const [tenant, { from, count }] of Object.entries(ranges)) {
      if (i < count) events.push(orderEvent(broker.exchange, tenant, from + i));
    }
  }
  await enqueue(db.pool, events, { schema: db.schema });
}

/** The saved snapshot of the environment of `sdkKey`, as `kind/key@version`. */
async function savedRows(sdkKey: string): Promise<string[]> {
  const { db } = fixture;
  const { rows } = await db.pool.query<{ kind: string; key: string; version: string }>(
    `select f.kind, f.key, f.version
     from "${db.schema}".flag_snapshot f
     join "${db.schema}".flag_snapshot_environments e using (environment)
     where f.environment = $1 order by f.kind, f.key`,
    [environmentOf(sdkKey)],
  );
  return rows.map((row) => `${row.kind}/${row.key}@${row.version}`);
}

/** Pending rows (neither published nor dead) of `tenant`. */
async function pendingOf(tenant: string): Promise<number> {
  const { db } = fixture;
  const { rows } = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from "${db.schema}".messages
     where tenant_id = $1 and published_at is null and dead_at is null`,
    [tenant],
  );
  return rows[0]?.n ?? 0;
}

function seqsOf(tenant: string): number[] {
  return fixture.broker.received
    .filter((m) => m.tenantId === tenant)
    .map((m) => (JSON.parse(String(m.body)) as { seq: number }).seq);
}

const inOrder = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Fails at once if a paused tenant's event was published. */
function assertNothingPublishedFor(tenants: readonly string[]): void {
  for (const tenant of tenants) {
    const published = seqsOf(tenant);
    if (published.length > 0) {
      throw new Error(`${tenant} is paused but ${published.length} of its events were published`);
    }
  }
}

describe('outbox-relay run remembers the kill switch across a restart without LaunchDarkly', () => {
  it('restarted while LaunchDarkly is unreachable, the relay holds the tenants LaunchDarkly last paused (by target, and by a rule for a tenant it never met), publishes the others, and releases them in order once LaunchDarkly resumes them', async () => {
    const { db } = fixture;
    const sdkKey = `sdk-${randomBytes(6).toString('hex')}`;
    const paused = ['acme', 'blocked-newco'];
    let server: StreamingServer | undefined = await startStreamingServer([
      publishFlagWithRules({ paused: ['acme'], pausedPrefix: 'blocked-' }, 2),
    ]);
    const port = server.port;
    let first: CliProcess | undefined;
    let second: CliProcess | undefined;
    try {
      // First life: LaunchDarkly is up. acme is paused; globex flows.
      await enqueueSeqs({ acme: { from: 0, count: 20 }, globex: { from: 0, count: 20 } });
      first = startRelay(sdkKey, port);
      const firstRelay = first;
      await waitFor(
        async () => (await savedRows(sdkKey)).length > 0,
        'the flag snapshot to be saved',
        30_000,
      );
      expect(await savedRows(sdkKey)).toEqual(['features/outbox-publish-enabled@2']);
      await waitFor(
        () => {
          assertNothingPublishedFor(['acme']);
          return seqsOf('globex').length === 20;
        },
        "globex's events",
        30_000,
      );
      expect(seqsOf('globex')).toEqual(inOrder(20));
      expect(seqsOf('acme')).toEqual([]);
      expect(loggedEntry(firstRelay.output(), SAVED_FLAGS_APPLY)).toBeUndefined();
      expect(await stop(firstRelay), firstRelay.output()).toBe(0);

      // LaunchDarkly becomes unreachable. Events for acme, for a tenant the relay
      // never met (paused by the rule only), and for initech (never paused).
      await server.close();
      server = undefined;
      await enqueueSeqs({
        acme: { from: 20, count: 40 },
        'blocked-newco': { from: 0, count: 40 },
        initech: { from: 0, count: 40 },
      });
      second = startRelay(sdkKey, port);
      const secondRelay = second;
      await waitFor(
        () => {
          assertNothingPublishedFor(paused);
          return seqsOf('initech').length === 40;
        },
        "initech's events, published while LaunchDarkly is unreachable",
        30_000,
      );
      expect(seqsOf('initech')).toEqual(inOrder(40));
      // Both paused tenants were met and decided paused, from the saved flags.
      await waitFor(
        () => loggedHttpPort(secondRelay.output()) !== undefined,
        'the HTTP endpoint',
        10_000,
      );
      const httpPort = loggedHttpPort(secondRelay.output()) as number;
      await waitFor(
        async () => {
          assertNothingPublishedFor(paused);
          const scrape = await scrapeMetrics(httpPort);
          return sampleValue(scrape, 'outbox_relay_paused_tenants') === 2;
        },
        'acme and blocked-newco decided paused',
        30_000,
      );
      assertNothingPublishedFor(paused);
      expect(await pendingOf('acme')).toBe(60);
      expect(await pendingOf('blocked-newco')).toBe(40);
      // A batch's rows are deleted once the broker has confirmed all of it,
      // which can come after the consumer has the messages.
      await waitFor(
        async () => (await pendingOf('initech')) === 0,
        "initech's published rows to be settled",
        10_000,
      );
      expect(
        loggedEntry(secondRelay.output(), SAVED_FLAGS_APPLY),
        secondRelay.output(),
      ).toMatchObject({ level: 'warn', store: 'postgres' });
      expect(secondRelay.output()).toMatch(
        /did not initialize in time; until it does, the flags saved in PostgreSQL apply/,
      );
      const ready = await readiness(httpPort);
      expect(ready.status).toBe(200);
      expect(ready.body.checks.flags).toMatchObject({ ok: true });
      expect(ready.body.checks.flags?.detail).toContain('applying the flags saved in PostgreSQL');

      // LaunchDarkly comes back on the same port, both tenants resumed.
      server = await startStreamingServer([publishFlag([], 3)], { port });
      await waitFor(
        () => seqsOf('acme').length >= 60 && seqsOf('blocked-newco').length >= 40,
        "acme's and blocked-newco's held events, once LaunchDarkly resumes them",
        90_000,
      );
      expect(seqsOf('acme')).toEqual(inOrder(60));
      expect(seqsOf('blocked-newco')).toEqual(inOrder(40));
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      expect(loggedEntry(secondRelay.output(), 'tenant flags available again')).toBeDefined();
      await waitFor(
        async () => (await savedRows(sdkKey))[0] === 'features/outbox-publish-enabled@3',
        'the resume to be saved',
      );
      expect(await stop(secondRelay), secondRelay.output()).toBe(0);
    } finally {
      kill(first);
      kill(second);
      await server?.close();
    }
  });
});
