import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { type ClaimParams, claimBatch, fetchPayloads } from '../src/outbox/queries.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { orderEvent } from './helpers/messages.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('claim');
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  await db.pool.query(`truncate "${db.schema}".messages, "${db.schema}".tenant_leases`);
});

function params(relayId: string, change: Partial<ClaimParams> = {}): ClaimParams {
  return {
    relayId,
    cursor: '',
    maxTenants: 100,
    minRowsPerTenant: 10,
    batchSize: 500,
    leaseMs: 60_000,
    pausedTenants: [],
    inFlight: [],
    ...change,
  };
}

/** The payload `seq` of each of `rows` belonging to `tenant`, in row order. */
async function seqs(rows: { id: string; tenant_id: string }[], tenant: string): Promise<number[]> {
  const mine = rows.filter((r) => r.tenant_id === tenant);
  const payloads = await fetchPayloads(
    db.pool,
    db.statements,
    mine.map((r) => r.id),
  );
  return mine.map((r) => JSON.parse(String(payloads.get(r.id))).seq);
}

describe('the claim', () => {
  it('never gives a key another relay holds in flight; the holder continues it in order', async () => {
    await enqueue(
      db.pool,
      Array.from({ length: 30 }, (_, i) => orderEvent('x', i % 2 === 0 ? 'a' : 'b', i)),
      { schema: db.schema },
    );
    const relayA = randomUUID();
    const relayB = randomUUID();
    const first = await claimBatch(
      db.pool,
      db.statements,
      params(relayA, { batchSize: 4, maxTenants: 1 }),
    );
    expect(new Set(first.map((r) => r.tenant_id))).toEqual(new Set(['a']));
    // Tenant a is in flight at relay A: relay B gets only tenant b.
    const second = await claimBatch(db.pool, db.statements, params(relayB));
    expect(new Set(second.map((r) => r.tenant_id))).toEqual(new Set(['b']));
    // Relay A continues tenant a after its own in-flight rows, in id order.
    const third = await claimBatch(
      db.pool,
      db.statements,
      params(relayA, { inFlight: first.map((r) => r.id) }),
    );
    expect([...(await seqs(first, 'a')), ...(await seqs(third, 'a'))]).toEqual(
      Array.from({ length: 15 }, (_, i) => i * 2),
    );
  });

  it('skips paused tenants and hands out rows round-robin from the cursor', async () => {
    await enqueue(
      db.pool,
      ['a', 'b', 'c', 'd'].flatMap((t) => [orderEvent('x', t, 1), orderEvent('x', t, 2)]),
      { schema: db.schema },
    );
    const relay = randomUUID();
    const rows = await claimBatch(
      db.pool,
      db.statements,
      params(relay, { cursor: 'b', pausedTenants: ['d'] }),
    );
    // Starts after b (c), wraps to a, then b; d is paused.
    expect(rows.map((r) => r.tenant_id).sort()).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
    expect(rows[0]?.next_cursor).toBe('b');
  });

  it("costs the same with a paused tenant's backlog of 1,000 or 100,000 rows (O(batch), never a walk)", async () => {
    // The held backlog is older than the other tenants' rows (lower ids), as
    // after a long pause: any walk in id order would have to cross all of it.
    let lowestId = 0;
    const insertPaused = async (n: number) => {
      await db.pool.query(
        `insert into "${db.schema}".messages (id, tenant_id, exchange, payload)
         select -g, 'paused', 'x', '\\x7b7d'::bytea from generate_series($1::int + 1, $1::int + $2::int) g`,
        [lowestId, n],
      );
      lowestId += n;
    };
    /** Runs one claim under EXPLAIN ANALYZE; returns its plan nodes and the buffers it touched. */
    const measure = async () => {
      await db.pool.query(`delete from "${db.schema}".tenant_leases`);
      await db.pool.query(`vacuum analyze "${db.schema}".messages`);
      const p = params(randomUUID(), { pausedTenants: ['paused'], batchSize: 100 });
      const plan = await db.pool.query({
        text: `explain (analyze, buffers, format json) ${db.statements.claim}`,
        values: [
          p.relayId,
          p.cursor,
          p.maxTenants,
          p.minRowsPerTenant,
          p.batchSize,
          p.leaseMs / 1000,
          p.pausedTenants,
          p.inFlight,
        ],
      });
      const root = plan.rows[0]['QUERY PLAN'][0].Plan;
      const nodes: Record<string, unknown>[] = [];
      const walk = (node: Record<string, unknown>) => {
        nodes.push(node);
        for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? [])
          walk(child);
      };
      walk(root);
      return {
        rows: root['Actual Rows'] as number,
        buffers: (root['Shared Hit Blocks'] as number) + (root['Shared Read Blocks'] as number),
        messageScans: nodes
          .filter((n) => n['Relation Name'] === 'messages')
          .map((n) => n['Node Type']),
        indexes: new Set(nodes.map((n) => n['Index Name']).filter((name) => name !== undefined)),
      };
    };
    await enqueue(
      db.pool,
      Array.from({ length: 200 }, (_, i) => orderEvent('x', `t${i % 20}`, i)),
      { schema: db.schema },
    );
    await insertPaused(1000);
    const small = await measure();
    await insertPaused(99_000);
    const large = await measure();

    for (const run of [small, large]) {
      expect(run.rows).toBe(100);
      // Only the small tenant_leases table may be read whole.
      expect(run.messageScans).not.toContain('Seq Scan');
      expect(run.indexes).toEqual(new Set(['messages_pending_idx', 'messages_pkey']));
    }
    // 99,000 more held rows (over 1,200 heap pages) may cost only what a
    // deeper index costs, about a page per probe: nothing walks them.
    expect(large.buffers).toBeLessThan(small.buffers * 1.5 + 100);
  });

  it('turns JIT off inside its own transaction, where a large backlog would make the plan pay for it', async () => {
    await enqueue(db.pool, orderEvent('x', 'acme', 1), { schema: db.schema });
    // jit_above_cost=0 makes every plan "expensive enough", as millions of rows do.
    const pool = new pg.Pool({
      connectionString: db.url,
      max: 1,
      options: '-c jit=on -c jit_above_cost=0',
    });
    try {
      const jitAvailable = (await pool.query('select pg_jit_available() as ok')).rows[0]
        .ok as boolean;
      if (jitAvailable) {
        // Without the relay's setting, the claim's plan is JIT-compiled.
        const client = await pool.connect();
        try {
          await client.query('begin');
          const plan = await client.query({
            text: `explain (analyze, format json) ${db.statements.claim}`,
            values: [randomUUID(), '', 100, 10, 500, 60, [], []],
          });
          await client.query('rollback');
          expect(plan.rows[0]['QUERY PLAN'][0].JIT).toBeDefined();
        } finally {
          client.release();
        }
      }
      // claimBatch sends, inside its transaction and before the claim, a setting that turns JIT off.
      const sent: string[] = [];
      const spy = {
        connect: async () => {
          const client = await pool.connect();
          const query = client.query.bind(client) as (...args: unknown[]) => unknown;
          (client as unknown as { query: (...args: unknown[]) => unknown }).query = (
            ...args: unknown[]
          ) => {
            const [config] = args;
            sent.push(
              typeof config === 'string' ? config : String((config as { text: string }).text),
            );
            return query(...args);
          };
          return client;
        },
      } as unknown as pg.Pool;
      expect(await claimBatch(spy, db.statements, params(randomUUID()))).toHaveLength(1);
      const jitOff = sent.findIndex((text) => /set_config\('jit', 'off', true\)/.test(text));
      const claim = sent.indexOf(db.statements.claim);
      // The statement that turns JIT off opens the claim's transaction, before the claim.
      expect(jitOff).toBe(0);
      expect(sent[0]).toMatch(/^begin isolation level read committed;/);
      expect(claim).toBeGreaterThan(jitOff);
      expect(sent.at(-1)).toBe('commit');
      // Transaction-local: the session keeps its own setting.
      expect((await pool.query(`select current_setting('jit') as jit`)).rows[0].jit).toBe('on');
    } finally {
      await pool.end();
    }
  });

  it('claims a row whose lower id committed after higher ids were claimed (no cursor on id)', async () => {
    const relay = randomUUID();
    // Transaction A takes id n but commits last; B takes n+1 and commits first.
    const late = await db.pool.connect();
    let first: Awaited<ReturnType<typeof claimBatch>>;
    try {
      await late.query('begin');
      await enqueue(late, orderEvent('x', 'acme', 1), { schema: db.schema });
      await enqueue(db.pool, orderEvent('x', 'acme', 2), { schema: db.schema });
      first = await claimBatch(db.pool, db.statements, params(relay));
      expect(await seqs(first, 'acme')).toEqual([2]);
      await late.query('commit');
    } finally {
      late.release();
    }
    // The relay still holds seq 2 in flight; the late row must be claimable all the same.
    const second = await claimBatch(
      db.pool,
      db.statements,
      params(relay, { inFlight: first.map((r) => r.id) }),
    );
    expect(await seqs(second, 'acme')).toEqual([1]);
  });
});
