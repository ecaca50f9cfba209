import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { flagsFileClient, launchDarklyClient } from '../src/tenants/flag-client.js';
import { FlagTenantGate } from '../src/tenants/flag-tenant-gate.js';
import { flagsFileJson, publishFlag } from './helpers/flags.js';
import { startStreamingServer } from './helpers/streaming-server.js';
import { waitFor } from './helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'outbox-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const gateOptions = {
  publishFlagKey: 'outbox-publish-enabled',
  rateFlagKey: 'outbox-tenant-rate-limit',
  failClosed: false,
  logger: silentLogger,
};

async function paused(gate: FlagTenantGate, tenant: string): Promise<boolean> {
  return (await gate.decide([tenant])).get(tenant)?.paused === true;
}

/** Milliseconds from `flip()` until the gate reports `tenant` as `expected`. */
async function flipToEffect(
  gate: FlagTenantGate,
  tenant: string,
  expected: boolean,
  flip: () => void,
): Promise<number> {
  const changed = new Promise<void>((resolve) => {
    const off = gate.onChange(() => {
      off();
      resolve();
    });
  });
  const started = performance.now();
  flip();
  await changed;
  await waitFor(
    async () => (await paused(gate, tenant)) === expected,
    `${tenant} paused=${expected}`,
    5000,
  );
  return performance.now() - started;
}

describe('flag sources', () => {
  it('a flags file pauses and resumes a tenant within 1 s, written in place or replaced by rename', async () => {
    const path = join(dir, 'flags.json');
    writeFileSync(path, flagsFileJson([]));
    const gate = new FlagTenantGate(await flagsFileClient(path, 5000, silentLogger), gateOptions);
    try {
      expect(gate.status()).toMatchObject({ source: 'flags-file', initialized: true });
      expect(await paused(gate, 'acme')).toBe(false);

      const inPlace = await flipToEffect(gate, 'acme', true, () =>
        writeFileSync(path, flagsFileJson(['acme'], 2)),
      );
      expect(inPlace).toBeLessThan(1000);
      expect(await paused(gate, 'globex')).toBe(false);

      // Replace by rename, as editors and Kubernetes ConfigMaps do.
      const byRename = await flipToEffect(gate, 'acme', false, () => {
        const next = join(dir, 'flags.json.tmp');
        writeFileSync(next, flagsFileJson([], 3));
        renameSync(next, path);
      });
      expect(byRename).toBeLessThan(1000);
      console.info(
        `flags file flip-to-effect: in place ${inPlace.toFixed(0)} ms, by rename ${byRename.toFixed(0)} ms`,
      );
    } finally {
      await gate.close();
    }
  });

  it('keeps the last good flags when the file is broken', async () => {
    const path = join(dir, 'broken.json');
    writeFileSync(path, flagsFileJson(['acme']));
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (message: string) => warnings.push(message) };
    const gate = new FlagTenantGate(await flagsFileClient(path, 2000, logger), gateOptions);
    try {
      expect(await paused(gate, 'acme')).toBe(true);
      writeFileSync(path, '{ not json');
      // The broken file is read and refused; the tenant stays paused.
      await waitFor(
        () => warnings.some((w) => /could not be loaded; keeping the previous flags/.test(w)),
        'the refusal',
      );
      expect(await paused(gate, 'acme')).toBe(true);
    } finally {
      await gate.close();
    }
  });

  it('reads YAML flags files', async () => {
    const path = join(dir, 'flags.yaml');
    writeFileSync(path, 'flagValues:\n  outbox-publish-enabled: false\n');
    const gate = new FlagTenantGate(await flagsFileClient(path, 5000, silentLogger), gateOptions);
    try {
      expect(await paused(gate, 'anyone')).toBe(true);
    } finally {
      await gate.close();
    }
  });

  it("the real SDK's streaming code path flips a tenant within 1 s (local server speaking the protocol)", async () => {
    const server = await startStreamingServer([publishFlag([])]);
    const client = await launchDarklyClient({
      sdkKey: 'sdk-local-test',
      baseUri: server.uri,
      streamUri: server.uri,
      eventsUri: server.uri,
      sendEvents: false,
      initTimeoutMs: 5000,
      logger: silentLogger,
    });
    const gate = new FlagTenantGate(client, gateOptions);
    try {
      expect(server.connections()).toBe(1);
      expect(gate.status()).toMatchObject({ source: 'launchdarkly', initialized: true });
      expect(await paused(gate, 'acme')).toBe(false);
      const pause = await flipToEffect(gate, 'acme', true, () =>
        server.patch(publishFlag(['acme'], 2)),
      );
      const resume = await flipToEffect(gate, 'acme', false, () =>
        server.patch(publishFlag([], 3)),
      );
      expect(pause).toBeLessThan(1000);
      expect(resume).toBeLessThan(1000);
      console.info(
        `streaming flip-to-effect: pause ${pause.toFixed(0)} ms, resume ${resume.toFixed(0)} ms`,
      );
    } finally {
      await gate.close();
      await server.close();
    }
  });
});
