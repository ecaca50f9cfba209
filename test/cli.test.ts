import { readdirSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestBroker, type TestBroker } from './helpers/broker.js';
import { runCli, startCli } from './helpers/cli.js';
import { uniqueName } from './helpers/database.js';
import { enqueueEvents } from './helpers/messages.js';
import { proxyFor } from './helpers/tcp-proxy.js';
import { waitFor } from './helpers/wait.js';

let broker: TestBroker;
let pool: pg.Pool;
const schema = uniqueName('t_cli');
let env: Record<string, string>;

beforeAll(async () => {
  broker = await createTestBroker('cli');
  pool = new pg.Pool({ connectionString: inject('databaseUrl') });
  env = { DATABASE_URL: inject('databaseUrl'), AMQP_URL: inject('amqpUrl'), OUTBOX_SCHEMA: schema };
});

afterAll(async () => {
  await broker?.close();
  await pool?.query(`drop schema if exists "${schema}" cascade`);
  await pool?.end();
});

/** The migrations in migrations/, in order: what `migrate up` applies. */
const MIGRATIONS = readdirSync(new URL('../migrations/', import.meta.url))
  .filter((file) => file.endsWith('.up.sql'))
  .map((file) => file.replace(/\.up\.sql$/, ''))
  .sort();

function appliedLines(names: readonly string[]): string {
  return names.map((name) => `applied ${name}\n`).join('');
}

function pendingLines(names: readonly string[]): string {
  return names.map((name) => `${name}  pending\n`).join('');
}

/** `migrate status` with the first `applied` migrations applied and the rest pending. */
function statusPattern(applied: number): RegExp {
  const lines = MIGRATIONS.map((name, i) =>
    i < applied ? `${name} {2}applied \\d{4}-.*\\n` : `${name} {2}pending\\n`,
  );
  return new RegExp(`^${lines.join('')}$`);
}

describe('outbox-relay as ops run it', () => {
  it('migrates, publishes 10,000 messages of several tenants exactly once and in order, and exits 0 on SIGTERM', async () => {
    const migrated = await runCli(['migrate', 'up'], env);
    expect(migrated).toMatchObject({
      code: 0,
      stdout: appliedLines(MIGRATIONS),
    });

    const tenants = ['acme', 'globex', 'initech', 'umbrella', 'hooli'];
    const expected = await enqueueEvents(pool, schema, broker.exchange, tenants, 2000);

    const relay = startCli(['run', '--batch-size', '250'], { ...env, LOG_LEVEL: 'info' });
    try {
      await waitFor(() => broker.received.length >= 10_000, '10,000 messages', 60_000);
      const remaining = async () =>
        (await pool.query(`select count(*)::int as n from "${schema}".messages`)).rows[0]
          .n as number;
      await waitFor(async () => (await remaining()) === 0, 'the outbox to empty');
    } finally {
      relay.child.kill('SIGTERM');
    }
    expect(await relay.exited).toBe(0);
    expect(relay.output()).toMatch(/"msg":"relay stopped"/);

    const ids = broker.received.map((m) => m.messageId);
    expect(new Set(ids).size).toBe(10_000);
    expect(ids.length).toBe(10_000);
    for (const tenant of tenants) {
      expect(broker.received.filter((m) => m.tenantId === tenant).map((m) => m.messageId)).toEqual(
        expected.get(tenant),
      );
    }
  });

  it('run --once publishes what is pending, then exits 0', async () => {
    broker.received.length = 0;
    await enqueueEvents(pool, schema, broker.exchange, ['acme'], 20);
    const result = await runCli(['run', '--once'], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout.trim())).toMatchObject({ published: 20, failed: 0 });
    await waitFor(() => broker.received.length === 20, '20 messages');
  });

  it('run --once exits 1 when a claim fails, instead of hanging on its open connections', async () => {
    await enqueueEvents(pool, schema, broker.exchange, ['initech'], 5);
    // A deferred trigger makes the claim's commit fail: the claim wrote a lease.
    await pool.query(
      `create function "${schema}".fail_claim_commit() returns trigger language plpgsql as $$
       begin raise exception 'injected claim commit failure'; end $$`,
    );
    await pool.query(
      `create constraint trigger fail_claim_commit after insert or update on "${schema}".tenant_leases
       deferrable initially deferred for each row execute function "${schema}".fail_claim_commit()`,
    );
    let failed: Awaited<ReturnType<typeof runCli>>;
    try {
      // Before the fix, the process stayed alive on its pool, broker connection and
      // liveness session, and was killed here after 30 s (code null).
      failed = await runCli(['run', '--once'], env, 30_000);
    } finally {
      await pool.query(`drop trigger fail_claim_commit on "${schema}".tenant_leases`);
      await pool.query(`drop function "${schema}".fail_claim_commit()`);
    }
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/injected claim commit failure/);
    // Nothing lost: the batch published while its claim committed, and a
    // second run finds nothing of this tenant left.
    await waitFor(() => broker.distinctIds(['initech']).size === 5, 'the 5 messages');
    const again = await runCli(['run', '--once'], env);
    expect(again.code).toBe(0);
    const { rows } = await pool.query(
      `select count(*)::int as n from "${schema}".messages where tenant_id = 'initech'`,
    );
    expect(rows[0].n).toBe(0);
  });

  it("run --once's exit code and summary say what it left unpublished, not what failed on the way (a broker reset mid-drain)", async () => {
    const tenants = ['hooli', 'pied-piper'];
    await enqueueEvents(pool, schema, broker.exchange, tenants, 10_000);
    const proxy = await proxyFor(broker.url);
    try {
      const running = runCli(['run', '--once'], {
        ...env,
        AMQP_URL: proxy.url,
        OUTBOX_BATCH_SIZE: '500',
      });
      // Mid-drain, the broker connection drops: the messages unconfirmed on it fail,
      // and the relay reconnects and publishes them in a later pass.
      await waitFor(() => broker.distinctIds(tenants).size >= 2000, 'the first messages', 60_000);
      proxy.reset();
      const result = await running;
      const summary = JSON.parse(result.stdout.trim());
      const { rows } = await pool.query(
        `select count(*)::int as n from "${schema}".messages where tenant_id = any($1)`,
        [tenants],
      );
      // The reset failed some publishes; whatever they were, the exit code and
      // `unpublished` match the rows left in the outbox (before the fix, any
      // failure on the way exited 1 and said that many rows "stay pending").
      expect(summary.failed).toBeGreaterThan(0);
      expect(summary.unpublished).toBe(rows[0].n);
      expect(result.code).toBe(rows[0].n === 0 ? 0 : 1);
      await runCli(['run', '--once'], env);
      await waitFor(() => broker.distinctIds(tenants).size === 20_000, 'every message');
    } finally {
      await proxy.close();
    }
  });

  it('refuses to run on a schema older than its code, naming the missing migrations (it used to retry failing claims for ever)', async () => {
    const half = uniqueName('t_cli_half');
    const halfEnv = { ...env, OUTBOX_SCHEMA: half };
    try {
      expect((await runCli(['migrate', 'up'], halfEnv)).code).toBe(0);
      // An upgrade deployed before its `migrate up`: the newest two migrations are missing.
      expect((await runCli(['migrate', 'down'], halfEnv)).code).toBe(0);
      expect((await runCli(['migrate', 'down'], halfEnv)).code).toBe(0);
      const missing = MIGRATIONS.slice(-2);
      const once = await runCli(['run', '--once'], halfEnv);
      expect(once.code).toBe(1);
      expect(once.stderr).toContain(
        `the outbox schema ${half} lacks migrations ${missing.join(', ')} of this version: run \`outbox-relay migrate up\` first`,
      );
      // `run` stops at start-up the same way, instead of logging failed claims for ever.
      const run = await runCli(['run'], halfEnv, 30_000);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`lacks migrations ${missing.join(', ')}`);
      expect((await runCli(['migrate', 'up'], halfEnv)).code).toBe(0);
      expect((await runCli(['run', '--once'], halfEnv)).code).toBe(0);
    } finally {
      await pool.query(`drop schema if exists "${half}" cascade`);
    }
  });

  it('prints help for the program and for each command', async () => {
    const main = await runCli(['--help']);
    expect(main).toMatchObject({ code: 0 });
    expect(main.stdout).toMatch(/outbox-relay migrate up\|down\|status/);
    const run = await runCli(['run', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--batch-size <value>\s+OUTBOX_BATCH_SIZE \(default 1000\)/);
    expect(run.stdout).toMatch(/--once/);
    const migrate = await runCli(['migrate', '--help']);
    expect(migrate.stdout).toMatch(/DATABASE_URL/);
    expect(migrate.stdout).not.toMatch(/AMQP_URL/);
  });

  it.each([
    [['run', '--batch-size', 'lots'], {}, /invalid --batch-size: expected an integer/],
    [['run'], { OUTBOX_CHANNELS: '0' }, /invalid OUTBOX_CHANNELS/],
    [['run'], { OUTBOX_LEASE: 'forever' }, /invalid OUTBOX_LEASE/],
    [['run', '--no-such-flag'], {}, /unknown option '--no-such-flag'/],
    [['migrate', 'sideways'], {}, /migrate needs an action: up, down or status/],
    [['migrate', 'up', '--batch-size', '5'], {}, /unknown option '--batch-size'/],
    [['launch'], {}, /unknown command 'launch'/],
    [['run'], { DATABASE_URL: 'mysql://localhost/db' }, /invalid DATABASE_URL/],
  ])('rejects bad input %j %j with exit code 2 and one line', async (args, extraEnv, message) => {
    const result = await runCli(args, { ...env, ...extraEnv });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    ['migrate', ['migrate', 'up']],
    ['run', ['run']],
  ])('%s exits 1 with one clear line when the database is unreachable', async (_name, args) => {
    const result = await runCli(
      args,
      { ...env, DATABASE_URL: 'postgres://postgres:secret@127.0.0.1:1/nowhere' },
      40_000,
    );
    expect(result.code).toBe(1);
    expect(result.ms).toBeLessThan(30_000);
    expect(result.stderr.trim()).toMatch(
      /^outbox-relay: cannot connect to PostgreSQL at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/nowhere: .*ECONNREFUSED/,
    );
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).not.toMatch(/secret|\n\s+at /);
  });

  it('gives up within the connect timeout when the database accepts TCP but never answers', async () => {
    // A local server that takes the connection and stays silent, like a hung or firewalled host.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const result = await runCli(
        ['migrate', 'status'],
        {
          ...env,
          DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/db`,
          OUTBOX_CONNECT_TIMEOUT: '2s',
        },
        40_000,
      );
      expect(result.code).toBe(1);
      expect(result.ms).toBeLessThan(30_000);
      expect(result.stderr.trim()).toMatch(
        /^outbox-relay: cannot connect to PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/db: .*timeout/i,
      );
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it('run exits 1 with one clear line when the broker is unreachable', async () => {
    const result = await runCli(
      ['run'],
      { ...env, AMQP_URL: 'amqp://guest:guest@127.0.0.1:1' },
      40_000,
    );
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').pop()).toMatch(
      /^outbox-relay: cannot connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1/,
    );
  });

  it('run refuses to start on a schema that was never migrated', async () => {
    const result = await runCli(['run'], { ...env, OUTBOX_SCHEMA: 'never_migrated' });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /never_migrated\.messages does not exist: run `outbox-relay migrate up` first/,
    );
  });

  it.each([
    [['tenants']],
    [['tenants', '--json']],
    [['dead', 'list']],
    [['dead', 'retry', '--all', '--yes']],
    [['dead', 'discard', '--tenant', 'acme', '--yes']],
    [['purge', '--tenant', 'acme', '--yes']],
  ])(
    '%j on a schema that was never migrated says to migrate, in one line, exit 1',
    async (args) => {
      const result = await runCli(args, { ...env, OUTBOX_SCHEMA: 'never_migrated' });
      expect(result).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toBe(
        'outbox-relay: the outbox table never_migrated.messages does not exist: run `outbox-relay migrate up` first\n',
      );
    },
  );
});

describe('outbox-relay migrate on an empty database', () => {
  it('applies, reverts, re-applies and lists the migrations', async () => {
    const admin = new pg.Client({ connectionString: inject('databaseUrl') });
    await admin.connect();
    const database = uniqueName('outbox_relay_migrate');
    await admin.query(`create database ${database}`);
    const url = new URL(inject('databaseUrl'));
    url.pathname = `/${database}`;
    const dbEnv = { DATABASE_URL: url.toString() };
    try {
      expect(await runCli(['migrate', 'status'], dbEnv)).toMatchObject({
        code: 0,
        stdout: pendingLines(MIGRATIONS),
      });
      expect(await runCli(['migrate', 'up'], dbEnv)).toMatchObject({
        code: 0,
        stdout: appliedLines(MIGRATIONS),
      });
      expect(await runCli(['migrate', 'up'], dbEnv)).toMatchObject({
        code: 0,
        stdout: 'schema outbox is up to date\n',
      });
      expect((await runCli(['migrate', 'status'], dbEnv)).stdout).toMatch(
        statusPattern(MIGRATIONS.length),
      );
      // down reverts one step at a time, the newest first.
      for (let left = MIGRATIONS.length - 1; left >= 0; left--) {
        expect(await runCli(['migrate', 'down'], dbEnv)).toMatchObject({
          code: 0,
          stdout: `reverted ${MIGRATIONS[left]}\n`,
        });
        expect((await runCli(['migrate', 'status'], dbEnv)).stdout).toMatch(statusPattern(left));
      }
      expect((await runCli(['migrate', 'status'], dbEnv)).stdout).toBe(pendingLines(MIGRATIONS));
      expect(await runCli(['migrate', 'up'], dbEnv)).toMatchObject({
        code: 0,
        stdout: appliedLines(MIGRATIONS),
      });
      const check = new pg.Client({ connectionString: url.toString() });
      await check.connect();
      const { rows } = await check.query(
        `select to_regclass('outbox.messages') is not null and to_regclass('outbox.tenant_leases') is not null as exists`,
      );
      await check.end();
      expect(rows[0].exists).toBe(true);
    } finally {
      await admin.query(`drop database if exists ${database} with (force)`);
      await admin.end();
    }
  });
});
