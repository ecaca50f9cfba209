import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { enqueueEvents } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('ldfaults');

describe('a failing LaunchDarkly connection', () => {
  it('an SDK key LaunchDarkly refuses: the relay fails open, says so once, and keeps publishing', async () => {
    const { db, broker } = fixture;
    let requests = 0;
    // Stands in for LaunchDarkly refusing the SDK key on every endpoint.
    const server = createServer((_request, response) => {
      requests += 1;
      response
        .writeHead(401, { 'content-type': 'application/json' })
        .end('{"message":"invalid sdk key"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 500);
    const relay = startCli(
      ['run'],
      cliEnv(fixture, {
        LAUNCHDARKLY_SDK_KEY: 'sdk-refused',
        LAUNCHDARKLY_BASE_URI: uri,
        LAUNCHDARKLY_STREAM_URI: uri,
        LAUNCHDARKLY_EVENTS_URI: uri,
        LAUNCHDARKLY_SEND_EVENTS: 'false',
        OUTBOX_FLAGS_INIT_TIMEOUT: '1s',
        LOG_LEVEL: 'info',
      }),
    );
    try {
      await waitFor(
        () => broker.received.length === 1000,
        'every message, published failing open',
        60_000,
      );
      expect(requests).toBeGreaterThan(0);
      expect(relay.child.exitCode).toBeNull();
      const output = relay.output();
      expect(output).toMatch(/tenant flags unavailable: failing open, every tenant publishes/);
      // Reported, not repeated per evaluation.
      expect(output.match(/failing open, every tenant publishes/g)?.length).toBe(1);
    } finally {
      relay.child.kill('SIGTERM');
      server.close();
      server.closeAllConnections();
    }
    expect(await relay.exited).toBe(0);
  });
});
