/**
 * The relay as ops run it, behind Prometheus and an orchestrator: a real
 * `outbox-relay run` process with its HTTP endpoint on, scraped and parsed
 * as Prometheus text, its readiness followed through a broker outage (a TCP
 * proxy that cuts the link and refuses new connections).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CliProcess, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { flagsFileJson } from './helpers/flags.js';
import {
  histogramCount,
  readiness,
  relayPort,
  type Scrape,
  sampleValue,
  scrapeMetrics,
  stopRelay,
} from './helpers/http-endpoint.js';
import { enqueueEvents } from './helpers/messages.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('httpep', { resetEachTest: true });
const dir = mkdtempSync(join(tmpdir(), 'outbox-httpep-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PAUSED = Array.from({ length: 8 }, (_, i) => `paused-${i}`);
const FLOWING = ['acme', 'globex', 'initech'];
const TOP = 3;

describe('the HTTP endpoint of a running relay', () => {
  it('serves Prometheus metrics that move as messages flow, with tenant labels bounded to the top N', async () => {
    const { db, broker } = fixture;
    const flags = join(dir, 'flags.json');
    writeFileSync(flags, flagsFileJson(PAUSED));
    const relay = startRelay({ OUTBOX_FLAGS_FILE: flags });
    try {
      const port = await relayPort(relay);
      const before = await scrapeMetrics(port);
      expect(sampleValue(before, 'outbox_relay_messages_published_total')).toBe(0);
      expect(before.get('outbox_relay_commit_to_publish_seconds')?.type).toBe('HISTOGRAM');
      // prom-client's process metrics carry the prefix too.
      expect(sampleValue(before, 'outbox_relay_process_resident_memory_bytes')).toBeGreaterThan(0);

      // Paused tenants get different backlog sizes, so the top N is well defined.
      for (const [i, tenant] of PAUSED.entries()) {
        await enqueueEvents(db.pool, db.schema, broker.exchange, [tenant], 10 + i * 5);
      }
      const held = PAUSED.reduce((sum, _, i) => sum + 10 + i * 5, 0);
      await enqueueEvents(db.pool, db.schema, broker.exchange, FLOWING, 200);
      const flowing = FLOWING.length * 200;

      let scrape: Scrape = before;
      await waitFor(
        async () => {
          scrape = await scrapeMetrics(port);
          return (
            sampleValue(scrape, 'outbox_relay_messages_published_total') === flowing &&
            sampleValue(scrape, 'outbox_relay_pending_messages') === held
          );
        },
        'the flowing tenants published and the backlog gauges refreshed',
        30_000,
      );
      expect(broker.received).toHaveLength(flowing);
      expect(histogramCount(scrape, 'outbox_relay_commit_to_publish_seconds')).toBe(flowing);
      expect(histogramCount(scrape, 'outbox_relay_claim_duration_seconds')).toBeGreaterThan(0);
      expect(histogramCount(scrape, 'outbox_relay_publish_batch_duration_seconds')).toBeGreaterThan(
        0,
      );
      expect(sampleValue(scrape, 'outbox_relay_held_messages')).toBe(held);
      // The relay learns a tenant is paused when it meets the tenant's rows.
      expect(sampleValue(scrape, 'outbox_relay_paused_tenants')).toBe(PAUSED.length);
      expect(sampleValue(scrape, 'outbox_relay_dead_messages')).toBe(0);
      expect(sampleValue(scrape, 'outbox_relay_oldest_pending_age_seconds')).toBeGreaterThan(0);
      expect(sampleValue(scrape, 'outbox_relay_messages_failed_total', { kind: 'nacked' })).toBe(0);
      expect(sampleValue(scrape, 'outbox_relay_broker_connected')).toBe(1);
      expect(sampleValue(scrape, 'outbox_relay_broker_blocked')).toBe(0);
      expect(sampleValue(scrape, 'outbox_relay_broker_channels')).toBeGreaterThan(0);
      expect(sampleValue(scrape, 'outbox_relay_ready', { check: 'broker' })).toBe(1);

      // Eight tenants have a backlog; only the top 3 get a label of their own.
      const tenants = scrape.get('outbox_relay_tenant_pending_messages')?.metrics ?? [];
      const labelled = new Map(tenants.map((m) => [m.labels?.tenant, Number(m.value)]));
      expect(labelled.size).toBe(TOP + 1);
      expect(labelled.get('paused-7')).toBe(45);
      expect(labelled.get('paused-6')).toBe(40);
      expect(labelled.get('paused-5')).toBe(35);
      expect(labelled.get('other')).toBe(held - 45 - 40 - 35);

      // A message to a missing exchange is rejected; one that no queue takes
      // (the default exchange, no such queue) is returned: the counters say which.
      await enqueueEvents(db.pool, db.schema, `${broker.exchange}-missing`, ['acme'], 1);
      // (Another tenant: behind acme's failing row, acme's next row waits its turn.)
      await enqueueEvents(db.pool, db.schema, '', ['globex'], 1);
      await waitFor(async () => {
        scrape = await scrapeMetrics(port);
        return (
          (sampleValue(scrape, 'outbox_relay_messages_failed_total', { kind: 'rejected' }) ?? 0) >
            0 && (sampleValue(scrape, 'outbox_relay_messages_returned_total') ?? 0) > 0
        );
      }, 'the failure counters to count the missing exchange and the returned message');
      expect(
        sampleValue(scrape, 'outbox_relay_messages_failed_total', { kind: 'unroutable' }),
      ).toBeGreaterThan(0);
      expect(sampleValue(scrape, 'outbox_relay_messages_dead_total')).toBe(0);
    } finally {
      await stopRelay(relay);
    }
  });

  it('answers /healthz, and /readyz turns 503 while the broker link is cut and 200 when it is back', async () => {
    const { db, broker } = fixture;
    const proxy = await proxyFor(broker.url);
    const relay = startRelay({ AMQP_URL: proxy.url });
    try {
      const port = await relayPort(relay);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/nowhere`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(
        405,
      );
      const head = await fetch(`http://127.0.0.1:${port}/readyz`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(await head.text()).toBe('');
      const ok = await readiness(port);
      expect(ok.status).toBe(200);
      expect(ok.body.ready).toBe(true);
      expect(Object.keys(ok.body.checks).sort()).toEqual(['broker', 'claims', 'database', 'flags']);

      proxy.refuse();
      proxy.reset();
      let down = ok;
      await waitFor(async () => {
        down = await readiness(port);
        return down.status === 503;
      }, '/readyz to answer 503 with the broker unreachable');
      expect(down.body.ready).toBe(false);
      expect(down.body.checks.broker?.ok).toBe(false);
      expect(down.body.checks.database?.ok).toBe(true);
      // Alive all the while: the orchestrator must not restart it.
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const cut = await scrapeMetrics(port);
      expect(sampleValue(cut, 'outbox_relay_broker_connected')).toBe(0);
      expect(sampleValue(cut, 'outbox_relay_ready', { check: 'broker' })).toBe(0);

      // Writes go on meanwhile; they are published once the broker is back.
      await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 50);
      proxy.accept();
      await waitFor(async () => (await readiness(port)).status === 200, '/readyz back to 200');
      await waitFor(
        async () =>
          sampleValue(await scrapeMetrics(port), 'outbox_relay_messages_published_total') === 50,
        'the messages written during the outage to be published',
      );
    } finally {
      await stopRelay(relay);
      await proxy.close();
    }
  });
});

describe('a relay whose HTTP port is taken', () => {
  it('exits 1 with one line naming the port, instead of running without its endpoint', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as AddressInfo;
      const relay = startRelay({ OUTBOX_HTTP_PORT: String(port), LOG_LEVEL: 'warn' });
      expect(await relay.exited).toBe(1);
      expect(relay.output()).toContain(`cannot serve HTTP on 127.0.0.1:${port} (OUTBOX_HTTP_PORT)`);
      expect(relay.output()).not.toMatch(/\n\s+at /);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});

function startRelay(env: Record<string, string>): CliProcess {
  return startCli(
    ['run'],
    cliEnv(fixture, {
      // The port is read from the 'HTTP endpoint listening' line.
      LOG_LEVEL: 'info',
      OUTBOX_HTTP_PORT: '0',
      OUTBOX_HTTP_HOST: '127.0.0.1',
      OUTBOX_STATS_INTERVAL: '1s',
      OUTBOX_METRICS_TOP_TENANTS: String(TOP),
      ...env,
    }),
  );
}
