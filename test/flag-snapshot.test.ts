/**
 * The kill switch remembers: LaunchDarkly's flags are saved in the outbox
 * schema, and a relay started while LaunchDarkly is unreachable applies them
 * (the real SDK, the local streaming server, a real relay on PostgreSQL and
 * RabbitMQ).
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { createLogger, type Logger } from '../src/log/logger.js';
import type { TenantGate } from '../src/relay/tenant-gate.js';
import { environmentOf } from '../src/tenants/flag-snapshot-store.js';
import { openTenantGate } from '../src/tenants/open-tenant-gate.js';
import { useOutboxFixture } from './helpers/fixture.js';
import {
  type FlagData,
  publishFlag,
  publishFlagWithRules,
  tenantSegment,
} from './helpers/flags.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { startStreamingServer } from './helpers/streaming-server.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('flag_snapshot', { resetEachTest: true });

/** A fresh SDK key: each test has a LaunchDarkly environment (a snapshot) of its own. */
function sdkKey(): string {
  return `sdk-${randomBytes(6).toString('hex')}`;
}

/** A port nothing listens on (a LaunchDarkly that is unreachable), to come back on later. */
async function freePort(): Promise<number> {
  const server = await startStreamingServer([]);
  await server.close();
  return server.port;
}

/** A JSON logger that keeps its entries. */
function logLines() {
  const entries: Record<string, unknown>[] = [];
  const logger: Logger = createLogger({
    level: 'info',
    format: 'json',
    colorize: false,
    destination: { write: (line) => entries.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return { logger, entries, messages: () => entries.map((entry) => String(entry.msg)) };
}

/** The gate `outbox-relay run` opens: LaunchDarkly at `port`, flags saved through `pool`. */
function openGate(
  key: string,
  port: number,
  logger: Logger,
  options: { pool?: pg.Pool; failClosed?: boolean; initTimeout?: string } = {},
): Promise<TenantGate> {
  const uri = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    DATABASE_URL: fixture.db.url,
    OUTBOX_SCHEMA: fixture.db.schema,
    LAUNCHDARKLY_SDK_KEY: key,
    LAUNCHDARKLY_BASE_URI: uri,
    LAUNCHDARKLY_STREAM_URI: uri,
    LAUNCHDARKLY_EVENTS_URI: uri,
    LAUNCHDARKLY_SEND_EVENTS: 'false',
    OUTBOX_FLAGS_FAIL_CLOSED: options.failClosed ? 'true' : 'false',
    OUTBOX_FLAGS_INIT_TIMEOUT: options.initTimeout ?? '5s',
  });
  return openTenantGate(config, logger, { pool: options.pool ?? fixture.db.pool });
}

/** The saved rows of the environment of `key`. */
async function savedRows(key: string) {
  const { rows } = await fixture.db.pool.query<{ kind: string; key: string; version: string }>(
    `select kind, key, version from "${fixture.db.schema}".flag_snapshot
     where environment = $1 order by kind, key`,
    [environmentOf(key)],
  );
  return rows.map((row) => `${row.kind}/${row.key}@${row.version}`);
}

async function savedEnvironment(key: string) {
  const { rows } = await fixture.db.pool.query<{ changed_at: Date; confirmed_at: Date }>(
    `select changed_at, confirmed_at from "${fixture.db.schema}".flag_snapshot_environments
     where environment = $1`,
    [environmentOf(key)],
  );
  return rows[0];
}

function seqsOf(tenant: string): number[] {
  return fixture.broker.received
    .filter((m) => m.tenantId === tenant)
    .map((m) => (JSON.parse(String(m.body)) as { seq: number }).seq);
}

const inOrder = (n: number) => Array.from({ length: n }, (_, i) => i);

/** 150 tenants (a list the SDK keeps as a Set), one of them `segment-member`. */
const SEGMENT = tenantSegment('held-tenants', [
  ...Array.from({ length: 149 }, (_, i) => `member-${i}`),
  'segment-member',
]);

describe('the kill switch remembers (flags saved in PostgreSQL)', () => {
  it('a relay started while LaunchDarkly is unreachable keeps paused tenants held, including ones paused by a rule it never met, and follows LaunchDarkly once it is back', async () => {
    const { db, broker } = fixture;
    const key = sdkKey();
    const rules = { pausedPrefix: 'blocked-', pausedSegment: 'held-tenants' };
    const flags: FlagData[] = [publishFlagWithRules({ ...rules, paused: ['acme'] }, 2)];
    const server = await startStreamingServer(flags, { segments: [SEGMENT] });
    const port = server.port;

    // First life: LaunchDarkly is up; acme is paused while globex flows.
    const first = await openGate(key, port, logLines().logger);
    const firstRelay = await createTestRelay(db, broker.url, { gate: first, batchSize: 50 });
    try {
      await waitFor(
        async () => (await savedRows(key)).length === 2,
        'the flag and its segment to be saved',
      );
      expect(await savedRows(key)).toEqual([
        'features/outbox-publish-enabled@2',
        'segments/held-tenants@1',
      ]);
      firstRelay.relay.start();
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 50);
      await waitFor(() => seqsOf('globex').length === 50, 'globex');
      await waitFor(() => first.pausedTenants().includes('acme'), 'acme held');
    } finally {
      await firstRelay.close();
      await first.close();
    }

    // LaunchDarkly becomes unreachable; the relay starts again.
    await server.close();
    const log = logLines();
    const second = await openGate(key, port, log.logger, { initTimeout: '300ms' });
    const secondRelay = await createTestRelay(db, broker.url, { gate: second, batchSize: 50 });
    let back: Awaited<ReturnType<typeof startStreamingServer>> | undefined;
    try {
      const status = second.status();
      expect(status).toMatchObject({
        source: 'launchdarkly',
        initialized: false,
        failing: undefined,
      });
      expect(status.saved).toMatchObject({ store: 'postgres' });
      expect(status.saved?.ageSeconds).toBeGreaterThanOrEqual(0);
      expect(status.saved?.ageSeconds).toBeLessThan(60);
      expect(second.closed()).toBe(false);
      expect(log.messages()).toContainEqual(
        expect.stringMatching(
          /^LaunchDarkly did not initialize in time; until it does, the flags saved in PostgreSQL apply/,
        ),
      );

      const fresh = ['blocked-newco', 'segment-member', 'initech'];
      await enqueueEvents(db.pool, db.schema, broker.exchange, fresh, 40);
      secondRelay.relay.start();
      await waitFor(() => seqsOf('initech').length === 40, 'initech, never paused');
      await waitFor(
        () =>
          ['acme', 'blocked-newco', 'segment-member'].every((t) =>
            second.pausedTenants().includes(t),
          ),
        'acme, blocked-newco (a rule) and segment-member (a segment) decided paused',
      );
      expect(seqsOf('acme')).toEqual([]);
      expect(seqsOf('blocked-newco')).toEqual([]);
      expect(seqsOf('segment-member')).toEqual([]);
      expect(log.messages()).toContain('tenant flags unavailable: applying the flags saved before');
      expect(
        log.entries.find(
          (e) => e.msg === 'tenant flags unavailable: applying the flags saved before',
        ),
      ).toMatchObject({ store: 'postgres' });

      // LaunchDarkly is back with the same flags: followed again, acme still held.
      back = await startStreamingServer(flags, { segments: [SEGMENT], port });
      await waitFor(() => second.status().initialized, 'the SDK to initialize', 20_000);
      expect(second.status()).toMatchObject({ initialized: true, saved: undefined });
      expect((await second.decide(['acme'])).get('acme')?.paused).toBe(true);

      // Resumed in LaunchDarkly: the held events arrive, in order.
      back.patch(publishFlagWithRules(rules, 3));
      await waitFor(() => seqsOf('acme').length === 50, "acme's held events");
      expect(seqsOf('acme')).toEqual(inOrder(50));
      back.patch(publishFlag([], 4));
      await waitFor(
        () => seqsOf('blocked-newco').length === 40 && seqsOf('segment-member').length === 40,
        'the tenants paused by a rule and by a segment',
      );
      expect(seqsOf('blocked-newco')).toEqual(inOrder(40));
      expect(seqsOf('segment-member')).toEqual(inOrder(40));
      expect(log.messages()).toContain('tenant flags available again');
      await waitFor(async () => (await db.counts()).pending === 0, 'the outbox to empty');
      // The resume is saved too; the segment is no longer needed.
      await waitFor(
        async () =>
          JSON.stringify(await savedRows(key)) ===
          JSON.stringify(['features/outbox-publish-enabled@4']),
        'the new flag version saved and the unused segment removed',
      );
    } finally {
      await secondRelay.close();
      await second.close();
      await back?.close();
    }
  });

  it('fails open, or closed as configured, only when nothing was ever saved', async () => {
    const port = await freePort();
    const [open, closed] = await Promise.all([
      openGate(sdkKey(), port, logLines().logger, { initTimeout: '200ms' }),
      openGate(sdkKey(), port, logLines().logger, { initTimeout: '200ms', failClosed: true }),
    ]);
    try {
      expect(open.status()).toMatchObject({
        initialized: false,
        failing: 'open',
        saved: undefined,
      });
      expect(closed.status()).toMatchObject({
        initialized: false,
        failing: 'closed',
        saved: undefined,
      });
      expect(closed.closed()).toBe(true);
      expect((await open.decide(['acme'])).get('acme')?.paused).toBe(false);
    } finally {
      await open.close();
      await closed.close();
    }

    // Once a full data set was saved, even one that pauses nobody, it applies instead.
    const key = sdkKey();
    const server = await startStreamingServer([publishFlag([])]);
    const live = await openGate(key, server.port, logLines().logger);
    await waitFor(async () => (await savedEnvironment(key)) !== undefined, 'the snapshot');
    await live.close();
    await server.close();
    const restarted = await openGate(key, server.port, logLines().logger, {
      initTimeout: '200ms',
      failClosed: true,
    });
    try {
      expect(restarted.status()).toMatchObject({
        failing: undefined,
        saved: { store: 'postgres' },
      });
      expect(restarted.closed()).toBe(false);
      expect((await restarted.decide(['acme'])).get('acme')?.paused).toBe(false);
    } finally {
      await restarted.close();
    }
  });

  it('writes only on change: a reconnect with the same flags writes nothing, a change writes its row, and other flags are never saved', async () => {
    const key = sdkKey();
    const unrelated = { ...publishFlag([], 7), key: 'some-other-team-flag' };
    const server = await startStreamingServer([publishFlag(['acme'], 2), unrelated]);
    try {
      const first = await openGate(key, server.port, logLines().logger);
      await waitFor(async () => (await savedEnvironment(key)) !== undefined, 'the snapshot');
      await first.close();
      expect(await savedRows(key)).toEqual(['features/outbox-publish-enabled@2']);
      expect(await savedRows(key)).not.toContainEqual(expect.stringContaining('some-other-team'));
      const written = await savedEnvironment(key);
      const rowVersion = async () =>
        (
          await fixture.db.pool.query<{ xmin: string }>(
            `select xmin::text from "${fixture.db.schema}".flag_snapshot where environment = $1`,
            [environmentOf(key)],
          )
        ).rows[0]?.xmin;
      const before = await rowVersion();

      // A second relay (or a reconnect) receives the same flags: no item is
      // written, only a confirmation, and that at most once a minute.
      await fixture.db.pool.query(
        `update "${fixture.db.schema}".flag_snapshot_environments
         set confirmed_at = confirmed_at - interval '2 minutes' where environment = $1`,
        [environmentOf(key)],
      );
      const second = await openGate(key, server.port, logLines().logger);
      try {
        await waitFor(
          async () =>
            ((await savedEnvironment(key))?.confirmed_at.getTime() ?? 0) >=
            (written?.confirmed_at.getTime() ?? Infinity),
          'the confirmation',
        );
        expect((await savedEnvironment(key))?.changed_at).toEqual(written?.changed_at);
        expect(await rowVersion()).toBe(before);

        // A change of another flag is not saved; a change of the gate's flag is.
        server.patch({ ...unrelated, version: 8 });
        server.patch(publishFlag([], 3));
        await waitFor(
          async () => (await savedRows(key))[0] === 'features/outbox-publish-enabled@3',
          'the change saved',
        );
        const changed = await savedEnvironment(key);
        expect(changed?.changed_at.getTime()).toBeGreaterThan(written?.changed_at.getTime() ?? 0);
        expect(await savedRows(key)).toEqual(['features/outbox-publish-enabled@3']);
      } finally {
        await second.close();
      }
    } finally {
      await server.close();
    }
  });

  it('relays that see different versions never take the snapshot back to an older one, nor delete what they never knew', async () => {
    const key = sdkKey();
    // Two streams of one environment, one behind the other (e.g. two Relay Proxies).
    const ahead = await startStreamingServer([publishFlag(['acme'], 5)]);
    const behind = await startStreamingServer(
      [publishFlagWithRules({ pausedSegment: 'lagging' }, 3)],
      { segments: [tenantSegment('lagging', ['acme'])] },
    );
    const gates: TenantGate[] = [];
    try {
      gates.push(await openGate(key, ahead.port, logLines().logger));
      await waitFor(
        async () => (await savedRows(key))[0] === 'features/outbox-publish-enabled@5',
        'version 5 saved',
      );
      // The lagging relay saves its segment, but not its older flag.
      gates.push(await openGate(key, behind.port, logLines().logger));
      await waitFor(
        async () => (await savedRows(key)).includes('segments/lagging@1'),
        "the lagging relay's write",
      );
      expect(await savedRows(key)).toEqual([
        'features/outbox-publish-enabled@5',
        'segments/lagging@1',
      ]);
      // The relay ahead saves version 6, and leaves the segment it never knew alone.
      ahead.patch(publishFlag(['acme', 'globex'], 6));
      await waitFor(
        async () => (await savedRows(key))[0] === 'features/outbox-publish-enabled@6',
        'version 6 saved',
      );
      expect(await savedRows(key)).toContain('segments/lagging@1');
      // The lagging relay catches up past it: version 7, and the segment it knew goes.
      behind.patch(publishFlag([], 7));
      await waitFor(
        async () =>
          JSON.stringify(await savedRows(key)) ===
          JSON.stringify(['features/outbox-publish-enabled@7']),
        'version 7 saved, the segment removed',
      );
    } finally {
      for (const gate of gates) await gate.close();
      await ahead.close();
      await behind.close();
    }
    // A relay starting now, LaunchDarkly unreachable, applies the newest: version 7 pauses nobody.
    const restarted = await openGate(key, ahead.port, logLines().logger, { initTimeout: '200ms' });
    try {
      expect(restarted.status().saved).toMatchObject({ store: 'postgres' });
      expect((await restarted.decide(['acme'])).get('acme')?.paused).toBe(false);
    } finally {
      await restarted.close();
    }
  });

  it('a change that arrives while PostgreSQL is unreachable applies at once and is saved once PostgreSQL is back', async () => {
    const key = sdkKey();
    const url = new URL(fixture.db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    // The relay's own pool (createPool): a connection cut while checked out
    // fails the borrower's query instead of throwing an unhandled 'error'.
    const pool = createPool({
      url: url.toString(),
      max: 2,
      connectTimeoutMs: 1000,
      applicationName: 'flag-snapshot test',
      onError: () => undefined,
    });
    const server = await startStreamingServer([publishFlag([], 1)]);
    const log = logLines();
    const gate = await openGate(key, server.port, log.logger, { pool });
    try {
      await waitFor(async () => (await savedRows(key)).length === 1, 'the snapshot');
      proxy.refuse();
      proxy.reset();
      server.patch(publishFlag(['acme'], 2));
      await waitFor(
        async () => (await gate.decide(['acme'])).get('acme')?.paused === true,
        'the pause, without PostgreSQL',
      );
      await waitFor(
        () => log.messages().includes('cannot save the tenant flags in PostgreSQL; retrying'),
        'the failed save',
      );
      expect(await savedRows(key)).toEqual(['features/outbox-publish-enabled@1']);
      proxy.accept();
      await waitFor(
        async () => (await savedRows(key))[0] === 'features/outbox-publish-enabled@2',
        'the pause saved after the outage',
        20_000,
      );
      expect(log.messages()).toContain('tenant flags saved in PostgreSQL again');
    } finally {
      await gate.close();
      await server.close();
      await pool.end();
      await proxy.close();
    }
  });

  it('without the flag snapshot table (migrations not applied) says so and follows LaunchDarkly as before', async () => {
    const schema = `t_unmigrated_${randomBytes(4).toString('hex')}`;
    await fixture.db.pool.query(`create schema "${schema}"`);
    const server = await startStreamingServer([publishFlag(['acme'], 1)]);
    const log = logLines();
    const uri = server.uri;
    const gate = await openTenantGate(
      loadConfig({
        OUTBOX_SCHEMA: schema,
        LAUNCHDARKLY_SDK_KEY: sdkKey(),
        LAUNCHDARKLY_BASE_URI: uri,
        LAUNCHDARKLY_STREAM_URI: uri,
        LAUNCHDARKLY_EVENTS_URI: uri,
        LAUNCHDARKLY_SEND_EVENTS: 'false',
      }),
      log.logger,
      { pool: fixture.db.pool },
    );
    try {
      expect(log.messages()).toContainEqual(
        expect.stringMatching(/flag_snapshot does not exist \(run `outbox-relay migrate up`\)/),
      );
      expect(gate.status()).toMatchObject({ initialized: true });
      expect((await gate.decide(['acme'])).get('acme')?.paused).toBe(true);
    } finally {
      await gate.close();
      await server.close();
      await fixture.db.pool.query(`drop schema "${schema}" cascade`);
    }
  });
});
