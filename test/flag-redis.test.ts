/**
 * LaunchDarkly's own way with a persistent store: the SDK's Redis store, and
 * daemon mode (the relay reads only the Redis store a Relay Proxy fills).
 * Redis on 127.0.0.1:6379; each test has a key prefix of its own and deletes
 * its keys after. The Relay Proxy is played by a plain SDK client with the
 * Redis store, streaming from the local streaming server.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { init, type LDClient } from '@launchdarkly/node-server-sdk';
import { RedisFeatureStore } from '@launchdarkly/node-server-sdk-redis';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { createLogger, type Logger } from '../src/log/logger.js';
import type { TenantGate } from '../src/relay/tenant-gate.js';
import { openTenantGate } from '../src/tenants/open-tenant-gate.js';
import { loadRedisPackage, REDIS_STORE_PACKAGE } from '../src/tenants/redis-flag-store.js';
import { useOutboxFixture } from './helpers/fixture.js';
import {
  type FlagData,
  publishFlag,
  publishFlagWithRules,
  tenantSegment,
} from './helpers/flags.js';
import { enqueueEvents } from './helpers/messages.js';
import { createTestRelay, type TestRelay } from './helpers/relay.js';
import { type StreamingServer, startStreamingServer } from './helpers/streaming-server.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const REDIS_PORT = 6379;
const fixture = useOutboxFixture('flag_redis', { resetEachTest: true });

/** ioredis as the Redis store package resolves it. */
const ioredis = createRequire(createRequire(import.meta.url).resolve(REDIS_STORE_PACKAGE))(
  'ioredis',
) as {
  Redis: new (
    url: string,
  ) => {
    keys(pattern: string): Promise<string[]>;
    del(...keys: string[]): Promise<number>;
    quit(): Promise<unknown>;
  };
};

const prefixes: string[] = [];
function uniquePrefix(): string {
  const prefix = `outbox-test-${randomBytes(4).toString('hex')}`;
  prefixes.push(prefix);
  return prefix;
}
afterEach(async () => {
  const redis = new ioredis.Redis(`redis://127.0.0.1:${REDIS_PORT}`);
  try {
    for (const prefix of prefixes.splice(0)) {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    await redis.quit();
  }
});

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

/** A Relay Proxy stand-in: an SDK client that streams from `server` into Redis under `prefix`. */
async function relayProxy(server: StreamingServer, prefix: string): Promise<LDClient> {
  const client = init('sdk-relay-proxy', {
    baseUri: server.uri,
    streamUri: server.uri,
    eventsUri: server.uri,
    sendEvents: false,
    featureStore: RedisFeatureStore({
      redisOpts: { host: '127.0.0.1', port: REDIS_PORT },
      prefix,
      cacheTTL: 0,
    }),
  });
  await client.waitForInitialization({ timeout: 5 });
  return client;
}

/** The gate `outbox-relay run` opens with these LaunchDarkly settings; LaunchDarkly itself is at a closed port unless given. */
async function openGate(settings: Record<string, string>, logger: Logger): Promise<TenantGate> {
  const closed = await startStreamingServer([]);
  await closed.close();
  return openTenantGate(
    loadConfig({
      OUTBOX_SCHEMA: fixture.db.schema,
      LAUNCHDARKLY_BASE_URI: closed.uri,
      LAUNCHDARKLY_STREAM_URI: closed.uri,
      LAUNCHDARKLY_EVENTS_URI: closed.uri,
      LAUNCHDARKLY_SEND_EVENTS: 'false',
      OUTBOX_FLAGS_INIT_TIMEOUT: '300ms',
      ...settings,
    }),
    logger,
    { pool: fixture.db.pool },
  );
}

function seqsOf(tenant: string): number[] {
  return fixture.broker.received
    .filter((m) => m.tenantId === tenant)
    .map((m) => (JSON.parse(String(m.body)) as { seq: number }).seq);
}

const inOrder = (n: number) => Array.from({ length: n }, (_, i) => i);

const SEGMENT = tenantSegment('held-tenants', [
  ...Array.from({ length: 149 }, (_, i) => `member-${i}`),
  'segment-member',
]);
const RULES = { pausedPrefix: 'blocked-', pausedSegment: 'held-tenants' };

async function pausedNow(gate: TenantGate, tenant: string): Promise<boolean> {
  return (await gate.decide([tenant])).get(tenant)?.paused === true;
}

describe('the Redis store (LaunchDarkly Relay Proxy)', () => {
  it('daemon mode: a relay with no LaunchDarkly at all follows the Redis store, and keeps tenants held across a restart, including ones paused by a rule it never met', async () => {
    const { db, broker } = fixture;
    const prefix = uniquePrefix();
    const flags: FlagData[] = [publishFlagWithRules({ ...RULES, paused: ['acme'] }, 2)];
    const server = await startStreamingServer(flags, { segments: [SEGMENT] });
    const proxy = await relayProxy(server, prefix);
    const daemon = {
      LAUNCHDARKLY_DAEMON_MODE: 'true',
      LAUNCHDARKLY_REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}`,
      LAUNCHDARKLY_REDIS_PREFIX: prefix,
    };
    let gate: TenantGate | undefined;
    let relay: TestRelay | undefined;
    try {
      const log = logLines();
      gate = await openGate(daemon, log.logger);
      expect(gate.status()).toMatchObject({
        source: 'relay-proxy-redis',
        initialized: true,
        failing: undefined,
      });
      expect(log.messages()).toContain(
        "tenant flags from the Relay Proxy's Redis store (daemon mode)",
      );
      relay = await createTestRelay(db, broker.url, { gate, batchSize: 50 });
      relay.relay.start();
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 50);
      await waitFor(() => seqsOf('globex').length === 50, 'globex');
      await waitFor(() => gate?.pausedTenants().includes('acme') === true, 'acme held');

      // The flag flips in Redis (written by the Relay Proxy): acme's events arrive, in order.
      server.patch(publishFlagWithRules(RULES, 3));
      await waitFor(() => seqsOf('acme').length === 50, "acme's held events", 20_000);
      expect(seqsOf('acme')).toEqual(inOrder(50));

      // A restart, still with no LaunchDarkly: tenants it never met are held by rule and segment.
      await relay.close();
      await gate.close();
      gate = await openGate(daemon, logLines().logger);
      relay = await createTestRelay(db, broker.url, { gate, batchSize: 50 });
      await enqueueEvents(
        db.pool,
        db.schema,
        broker.exchange,
        ['blocked-newco', 'segment-member', 'initech'],
        30,
      );
      relay.relay.start();
      await waitFor(() => seqsOf('initech').length === 30, 'initech');
      await waitFor(
        () => ['blocked-newco', 'segment-member'].every((t) => gate?.pausedTenants().includes(t)),
        'the tenants paused by a rule and a segment held',
      );
      expect(seqsOf('blocked-newco')).toEqual([]);
      expect(seqsOf('segment-member')).toEqual([]);

      server.patch(publishFlag([], 4));
      await waitFor(
        () => seqsOf('blocked-newco').length === 30 && seqsOf('segment-member').length === 30,
        'their held events',
        20_000,
      );
      expect(seqsOf('blocked-newco')).toEqual(inOrder(30));
      expect(seqsOf('segment-member')).toEqual(inOrder(30));
    } finally {
      await relay?.close();
      await gate?.close();
      proxy.close();
      await server.close();
    }
  });

  it('daemon mode: while Redis is unreachable, decisions stay as Redis last said', async () => {
    const prefix = uniquePrefix();
    const server = await startStreamingServer([publishFlag(['acme'], 2)]);
    const proxy = await relayProxy(server, prefix);
    const redisProxy = await startTcpProxy('127.0.0.1', REDIS_PORT);
    const log = logLines();
    const gate = await openGate(
      {
        LAUNCHDARKLY_DAEMON_MODE: 'true',
        LAUNCHDARKLY_REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
        LAUNCHDARKLY_REDIS_PREFIX: prefix,
      },
      log.logger,
    );
    try {
      expect(await pausedNow(gate, 'acme')).toBe(true);
      redisProxy.refuse();
      redisProxy.reset();
      await waitFor(
        () => log.messages().includes('LaunchDarkly Redis store unreachable; reconnecting'),
        'the outage to be noticed',
      );
      // Once the store's cache has expired the SDK asks Redis, which fails.
      await waitFor(
        async () =>
          (await pausedNow(gate, 'acme')) &&
          log.entries.some((e) => /Error fetching key/.test(String(e.detail))),
        'an evaluation that went to Redis and failed',
      );
      expect(await pausedNow(gate, 'acme')).toBe(true);
      expect(await pausedNow(gate, 'globex')).toBe(false);

      // Redis back: changes are followed again.
      redisProxy.accept();
      server.patch(publishFlag([], 3));
      await waitFor(async () => !(await pausedNow(gate, 'acme')), 'the resume, read from Redis');
    } finally {
      await gate.close();
      proxy.close();
      await server.close();
      await redisProxy.close();
    }
  });

  it('with an SDK key, the SDK keeps its flags in Redis: a relay started while LaunchDarkly is unreachable evaluates from Redis', async () => {
    const { db, broker } = fixture;
    const prefix = uniquePrefix();
    const flags: FlagData[] = [publishFlagWithRules({ ...RULES, paused: ['acme'] }, 2)];
    const server = await startStreamingServer(flags, { segments: [SEGMENT] });
    const port = server.port;
    const settings = (uri: string) => ({
      LAUNCHDARKLY_SDK_KEY: 'sdk-redis-test',
      LAUNCHDARKLY_BASE_URI: uri,
      LAUNCHDARKLY_STREAM_URI: uri,
      LAUNCHDARKLY_EVENTS_URI: uri,
      LAUNCHDARKLY_REDIS_URL: `redis://127.0.0.1:${REDIS_PORT}`,
      LAUNCHDARKLY_REDIS_PREFIX: prefix,
    });
    const first = await openGate(
      { ...settings(server.uri), OUTBOX_FLAGS_INIT_TIMEOUT: '5s' },
      logLines().logger,
    );
    expect(first.status()).toMatchObject({ source: 'launchdarkly', initialized: true });
    await first.close();
    await server.close();

    const log = logLines();
    const gate = await openGate(settings(server.uri), log.logger);
    const relay = await createTestRelay(db, broker.url, { gate, batchSize: 50 });
    let back: StreamingServer | undefined;
    try {
      expect(gate.status()).toMatchObject({
        initialized: false,
        failing: undefined,
        saved: { store: 'redis' },
      });
      expect(log.messages()).toContainEqual(
        expect.stringMatching(/until it does, the flags saved in the Redis store apply$/),
      );
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'blocked-x', 'globex'], 20);
      relay.relay.start();
      await waitFor(() => seqsOf('globex').length === 20, 'globex');
      await waitFor(
        () => ['acme', 'blocked-x'].every((t) => gate.pausedTenants().includes(t)),
        'acme and blocked-x held',
      );
      expect(seqsOf('acme')).toEqual([]);

      back = await startStreamingServer(flags, { segments: [SEGMENT], port });
      await waitFor(() => gate.status().initialized, 'the SDK to initialize', 20_000);
      back.patch(publishFlag([], 3));
      await waitFor(
        () => seqsOf('acme').length === 20 && seqsOf('blocked-x').length === 20,
        'the held events',
      );
      expect(seqsOf('acme')).toEqual(inOrder(20));
      expect(seqsOf('blocked-x')).toEqual(inOrder(20));
    } finally {
      await relay.close();
      await gate.close();
      await back?.close();
    }
  });

  it('without the optional package, a Redis setting fails with a clear error', async () => {
    const missing = Object.assign(
      new Error(`Cannot find package '${REDIS_STORE_PACKAGE}' imported from /app/dist/tenants`),
      { code: 'ERR_MODULE_NOT_FOUND' },
    );
    const failure = loadRedisPackage(() => Promise.reject(missing));
    await expect(failure).rejects.toBeInstanceOf(ConfigError);
    await expect(failure).rejects.toThrow(
      `invalid LAUNCHDARKLY_REDIS_URL: the Redis store needs the optional package ${REDIS_STORE_PACKAGE}: run \`npm install ${REDIS_STORE_PACKAGE}\` next to outbox-relay`,
    );
    // Other import failures are not disguised as a missing package.
    await expect(loadRedisPackage(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});
