import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { runCli, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { flagsFileJson } from './helpers/flags.js';
import { enqueueEvents, orderEvent } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('tenantcli', { resetEachTest: true });
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
        state: 'paused',
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
    expect(bad.stderr).toMatch(/--before expects an ISO 8601 date .* or a time with a zone/);
  });

  it('purges nothing when --tenant is given twice, and takes the forms --before documents', async () => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 3);
    const twice = await runCli(
      ['purge', '--tenant', 'acme', '--tenant', 'globex', '--yes'],
      cliEnv(fixture),
    );
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/--tenant given more than once \('acme', then 'globex'\)/);
    const impossible = await runCli(
      ['purge', '--tenant', 'acme', '--before', '2026-02-30', '--yes'],
      cliEnv(fixture),
    );
    expect(impossible.code).toBe(2);
    expect(impossible.stderr).toMatch(/--before '2026-02-30' is not a real date and time/);
    expect(await pendingByTenant()).toEqual({ acme: 3, globex: 3 });

    for (const [before, iso] of [
      ['2028-02-29', '2028-02-29T00:00:00.000Z'],
      ['2026-11-21T08:00Z', '2026-11-21T08:00:00.000Z'],
      ['2026-11-21T09:00:30.5+01:00', '2026-11-21T08:00:30.500Z'],
      ['2026-11-21T03:00:00-05:00', '2026-11-21T08:00:00.000Z'],
    ]) {
      const purged = await runCli(
        ['purge', '--tenant=nobody', `--before=${before}`, '--yes'],
        cliEnv(fixture),
      );
      expect(purged, before).toMatchObject({
        code: 0,
        stdout: `purged 0 pending events of tenant nobody created before ${iso}\n`,
      });
    }
  });

  it('shows states as unknown, says why in one line and exits 1 when the flags file is broken', async () => {
    const { db, broker } = fixture;
    const flags = join(dir, 'broken.json');
    writeFileSync(flags, flagsFileJson(['acme']));
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme', 'globex'], 2);
    const env = cliEnv(fixture, { OUTBOX_FLAGS_FILE: flags });
    const good = await runCli(['tenants'], env);
    expect(good).toMatchObject({ code: 0, stderr: '' });
    expect(good.stdout).toMatch(/^acme\s+2\s+\S+\s+paused$/m);

    // Relays keep the flags they loaded (acme stays held); this command cannot know them.
    writeFileSync(flags, '{"flags": {');
    const table = await runCli(['tenants'], env);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(
      /^flag source: flags-file \(unavailable: flags file .*broken\.json: /,
    );
    expect(table.stdout).toMatch(/^acme\s+2\s+\S+\s+unknown \(flags unavailable\)$/m);
    expect(table.stdout).toMatch(/^globex\s+2\s+\S+\s+unknown \(flags unavailable\)$/m);
    expect(table.stdout).not.toMatch(/publishing|paused/);
    expect(table.stderr).toMatch(
      /^outbox-relay: tenant flags unavailable \(flags file .*broken\.json: .*JSON.*\): tenant states are unknown\n$/,
    );

    const json = await runCli(['tenants', '--json'], env);
    expect(json.code).toBe(1);
    expect(json.stderr.trim().split('\n')).toHaveLength(1);
    const report = JSON.parse(json.stdout) as {
      flagSource: { source: string; initialized: boolean; error: string };
      tenants: unknown[];
    };
    expect(report.flagSource).toMatchObject({
      source: 'flags-file',
      initialized: false,
      error: expect.stringMatching(/^flags file .*broken\.json: /),
    });
    expect(report.tenants).toContainEqual({
      tenantId: 'acme',
      pending: 2,
      oldestPendingSeconds: expect.any(Number),
      paused: null,
      rateLimit: null,
      state: 'unknown',
    });
  });

  it.each([
    ['failing open', 'false'],
    ['failing closed', 'true'],
  ])('shows states as unknown when LaunchDarkly is unreachable (%s)', async (_name, failClosed) => {
    const { db, broker } = fixture;
    await enqueueEvents(db.pool, db.schema, broker.exchange, ['acme'], 1);
    const result = await runCli(
      ['tenants'],
      cliEnv(fixture, {
        LAUNCHDARKLY_SDK_KEY: 'sdk-test',
        LAUNCHDARKLY_BASE_URI: 'http://127.0.0.1:1',
        LAUNCHDARKLY_STREAM_URI: 'http://127.0.0.1:1',
        LAUNCHDARKLY_EVENTS_URI: 'http://127.0.0.1:1',
        LAUNCHDARKLY_SEND_EVENTS: 'false',
        OUTBOX_FLAGS_INIT_TIMEOUT: '1s',
        OUTBOX_FLAGS_FAIL_CLOSED: failClosed,
      }),
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^flag source: launchdarkly \(unavailable: LaunchDarkly: /);
    expect(result.stdout).toMatch(/^acme\s+1\s+\S+\s+unknown \(flags unavailable\)$/m);
    expect(result.stderr).toMatch(
      /^outbox-relay: tenant flags unavailable \(LaunchDarkly: .*(ECONNREFUSED|timed out).*\): tenant states are unknown\n$/,
    );
  });
});

async function pendingByTenant(): Promise<Record<string, number>> {
  const { rows } = await fixture.db.pool.query<{ tenant_id: string; n: number }>(
    `select tenant_id, count(*)::int as n from "${fixture.db.schema}".messages group by 1 order by 1`,
  );
  return Object.fromEntries(rows.map((row) => [row.tenant_id, row.n]));
}

describe('outbox-relay purge when PostgreSQL goes away mid-statement', () => {
  it('says the connection to PostgreSQL was lost and that the outcome is unknown, not "unexpected failure: …"', async () => {
    const { db } = fixture;
    await enqueueEvents(db.pool, db.schema, db.schema, ['acme'], 20);
    // The purge's DELETE waits in a trigger, so the test can end its session mid-statement.
    await db.pool.query(
      `create function "${db.schema}".slow_delete() returns trigger language plpgsql as $$
       begin perform pg_sleep(30); return old; end $$`,
    );
    await db.pool.query(
      `create trigger slow_delete before delete on "${db.schema}".messages
       for each row execute function "${db.schema}".slow_delete()`,
    );
    const purge = startCli(['purge', '--tenant', 'acme', '--yes'], cliEnv(fixture));
    let terminated = 0;
    await waitFor(async () => {
      const { rows } = await db.pool.query(
        `select pg_terminate_backend(pid) as ok from pg_stat_activity
         where application_name = 'outbox-relay purge' and query like 'delete%' and query like '%' || $1 || '%'`,
        [db.schema],
      );
      terminated = rows.length;
      return terminated > 0;
    }, 'the purge to be deleting');
    expect(await purge.exited).toBe(1);
    expect(purge.output()).toMatch(
      /lost the connection to PostgreSQL at postgres:\/\/.* during `outbox-relay purge` \(.*\): whether its last statement took effect is unknown; check before running it again/,
    );
    expect(purge.output()).not.toMatch(/unexpected failure/);
    // Here the session ended before its DELETE committed: every row is still there.
    const { rows } = await db.pool.query(
      `select count(*)::int as n from "${db.schema}".messages where tenant_id = 'acme'`,
    );
    expect(rows[0].n).toBe(20);
  });
});
