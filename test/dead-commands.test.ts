import { describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { runCli } from './helpers/cli.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';

const fixture = useOutboxFixture('deadcli');

describe('outbox-relay dead, as ops run it', () => {
  it('lists dead events, retries one, and discards a tenant’s only with --yes', async () => {
    const { db, broker } = fixture;
    const env = { DATABASE_URL: db.url, OUTBOX_SCHEMA: db.schema };
    // Unroutable (mandatory, no binding): with one attempt allowed they go dead.
    await enqueue(
      db.pool,
      ['acme', 'acme', 'globex'].map((tenant, i) =>
        orderEvent('amq.direct', tenant, i, { routingKey: 'nowhere' }),
      ),
      { schema: db.schema },
    );
    const test = await createTestRelay(db, broker.url, { maxAttempts: 1 });
    try {
      expect(await test.relay.runOnce()).toMatchObject({ failed: 3, dead: 3 });
    } finally {
      await test.close();
    }

    const listed = await runCli(['dead', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    const dead = JSON.parse(listed.stdout) as {
      id: string;
      message_id: string;
      tenant_id: string;
      attempts: number;
      last_error: string;
    }[];
    expect(dead.map((r) => r.tenant_id)).toEqual(['acme', 'acme', 'globex']);
    expect(dead[0]).toMatchObject({ attempts: 1, last_error: expect.stringMatching(/NO_ROUTE/) });
    // The text lists each row's id and message id (what enqueue returns) first.
    const text = (await runCli(['dead', 'list'], env)).stdout;
    expect(text).toMatch(/acme {2}amq\.direct nowhere {2}attempts 1/);
    expect(text).toContain(`${dead[0]?.id}  ${dead[0]?.message_id}  acme  `);
    const limited = await runCli(['dead', 'list', '--json', '--limit=2', '--tenant=acme'], env);
    expect(JSON.parse(limited.stdout)).toHaveLength(2);
    const one = await runCli(['dead', 'list', '--json', '--limit', '1'], env);
    expect(JSON.parse(one.stdout)).toHaveLength(1);

    const retried = await runCli(['dead', 'retry', '--id', String(dead[0]?.id)], env);
    expect(retried).toMatchObject({ code: 0, stdout: 'retried 1 dead events\n' });
    const { rows } = await db.pool.query(
      `select attempts, dead_at is null as pending from "${db.schema}".messages where id = $1`,
      [dead[0]?.id],
    );
    expect(rows[0]).toEqual({ attempts: 0, pending: true });

    for (const args of [
      ['dead', 'discard', '--tenant', 'globex'],
      ['dead', 'retry', '--all'],
      ['dead', 'retry'],
      ['dead', 'retry', '--id', 'x1'],
      ['dead', 'bury', '--all'],
      // A narrowing flag of list must not look as if it narrowed a retry or discard.
      ['dead', 'discard', '--tenant', 'globex', '--limit', '1', '--yes'],
      // Nor may one of two tenants be dropped.
      ['dead', 'discard', '--tenant', 'acme', '--tenant', 'globex', '--yes'],
      ['dead', 'list', '--limit', '-5'],
    ]) {
      const refused = await runCli(args, env);
      expect(refused.code, args.join(' ')).toBe(2);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    }

    expect(await runCli(['dead', 'discard', '--tenant', 'globex', '--yes'], env)).toMatchObject({
      code: 0,
      stdout: 'discarded 1 dead events\n',
    });
    expect(JSON.parse((await runCli(['dead', 'list', '--json'], env)).stdout)).toHaveLength(1);
    expect(await db.counts()).toMatchObject({ pending: 1, dead: 1 });
  });
});
