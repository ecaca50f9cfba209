import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { runCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { flagsFileJson } from './helpers/flags.js';
import { enqueueEvents, orderEvent } from './helpers/messages.js';

const fixture = useOutboxFixture('tenantcli');
const dir = mkdtempSync(join(tmpdir(), 'outbox-tenantcli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('outbox-relay tenants and purge, as ops run them', () => {
  it('lists pending events per tenant with their state, then purges one tenant', async () => {
    const { db, broker } = fixture;
    const flags = join(dir, 'flags.json');
    writeFileSync(flags, flagsFileJson(['acme']));
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 30);

    // The relay, with acme paused in the flags file, publishes only globex.
    const once = await runCli(['run', '--once'], cliEnv(fixture, { OUTBOX_FLAGS_FILE: flags }));
    expect(once.code).toBe(0);
    expect(JSON.parse(once.stdout.trim())).toMatchObject({ published: 30 });

    const listed = await runCli(
      ['tenants', '--json'],
      cliEnv(fixture, { OUTBOX_FLAGS_FILE: flags }),
    );
    expect(listed.code).toBe(0);
    const report = JSON.parse(listed.stdout) as {
      flagSource: { source: string };
      tenants: {
        tenantId: string;
        pending: number;
        paused: boolean;
        oldestPendingSeconds: number;
      }[];
    };
    expect(report.flagSource.source).toBe('flags-file');
    expect(report.tenants).toEqual([
      {
        tenantId: 'acme',
        pending: 30,
        oldestPendingSeconds: expect.any(Number),
        paused: true,
        rateLimit: null,
      },
    ]);

    const table = await runCli(['tenants'], cliEnv(fixture, { OUTBOX_FLAGS_FILE: flags }));
    expect(table.stdout).toMatch(/^acme\s+30\s+\S+\s+paused$/m);

    const refused = await runCli(['purge', '--tenant', 'acme'], cliEnv(fixture));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/add --yes to confirm/);

    // Only events created before --before go; a later one stays.
    const cutoff = new Date();
    await enqueue(db.pool, orderEvent(broker.exchange, 'acme', 99), { schema: db.schema });
    const purged = await runCli(
      ['purge', '--tenant', 'acme', '--before', cutoff.toISOString(), '--yes'],
      cliEnv(fixture),
    );
    expect(purged.code).toBe(0);
    expect(purged.stdout).toMatch(/^purged 30 pending events of tenant acme/);
    const { rows } = await db.pool.query(
      `select tenant_id, count(*)::int as n from "${db.schema}".messages group by 1`,
    );
    expect(rows).toEqual([{ tenant_id: 'acme', n: 1 }]);

    const bad = await runCli(
      ['purge', '--tenant', 'acme', '--before', 'yesterday', '--yes'],
      cliEnv(fixture),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--before expects an ISO 8601 time with a zone/);
  });
});
