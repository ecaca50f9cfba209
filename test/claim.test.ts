import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import {
  type ClaimedRow,
  claimBatch,
  claimTransaction,
  lockClaimTenants,
} from '../src/outbox/claim.js';
import {
  type ClaimParams,
  claimTenantsVariables,
  claimVariables,
  defaultClaimParams,
} from '../src/outbox/claim-sql.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { createOutboxStore } from '../src/outbox/outbox-store.js';
import { createTestDatabase, holdLiveness, type TestDatabase } from './helpers/database.js';
import { orderEvent } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

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
  // These claims run outside a relay, with no liveness lock held.
  return defaultClaimParams(relayId, { requireLiveness: false, ...change });
}

/** The payload `seq` of each of `rows` belonging to `tenant`, in row order. */
function seqs(rows: { tenant_id: string; payload: Buffer }[], tenant: string): number[] {
  return rows.filter((r) => r.tenant_id === tenant).map((r) => JSON.parse(String(r.payload)).seq);
}

/** The payload `seq`s of `rows` (in row order) per ordering key. */
function keySeqs(rows: { ordering_key: string | null; payload: Buffer }[]): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const row of rows) {
    const key = row.ordering_key ?? '';
    byKey.set(key, [...(byKey.get(key) ?? []), JSON.parse(String(row.payload)).seq]);
  }
  return byKey;
}

/**
 * Inserts `perKey` rows for each of `keys` of `tenant` by plain SQL (fast),
 * interleaved, each key's payload seqs counting up from `firstSeq`.
 */
async function insertRows(
  tenant: string,
  keys: readonly string[],
  perKey: number,
  firstSeq = 0,
): Promise<void> {
  await db.pool.query(
    `insert into "${db.schema}".messages (tenant_id, ordering_key, exchange, payload)
     select $1, k.key, 'x', convert_to(json_build_object('seq', $4::int + g)::text, 'UTF8')
     from generate_series(0, $3::int - 1) g cross join unnest($2::text[]) with ordinality k (key, i)
     order by g, k.i`,
    [tenant, keys, perKey, firstSeq],
  );
}

/** Makes the oldest pending row of `tenant`'s `key` back off for an hour, as after a failed publish. */
async function backOffHead(tenant: string, key: string): Promise<void> {
  await db.pool.query(
    `update "${db.schema}".messages set attempts = 1, available_at = now() + interval '1 hour'
     where id = (select min(id) from "${db.schema}".messages where tenant_id = $1 and ordering_key = $2)`,
    [tenant, key],
  );
}

/** Claims as one relay until a claim returns nothing, keeping every row in flight; returns each claim's rows. */
async function claimAll(change: Partial<ClaimParams>, maxClaims: number): Promise<ClaimedRow[][]> {
  const relay = randomUUID();
  const claims: ClaimedRow[][] = [];
  const inFlight: string[] = [];
  for (let i = 0; i < maxClaims; i++) {
    const rows = await claimBatch(db.store, params(relay, { ...change, inFlight }));
    if (rows.length === 0) return claims;
    claims.push(rows);
    inFlight.push(...rows.map((r) => r.id));
  }
  throw new Error(`still claiming rows after ${maxClaims} claims`);
}

/** The plan tree of `text` run under EXPLAIN ANALYZE with `values`, on `client`. */
async function explainPlan(client: pg.ClientBase, text: string, values: unknown[]) {
  const plan = await client.query({
    text: `explain (analyze, buffers, format json) ${text}`,
    values,
  });
  return plan.rows[0]['QUERY PLAN'][0].Plan as Record<string, unknown>;
}

/**
 * Runs one claim (its tenant walk, then the claim statement) under EXPLAIN
 * ANALYZE, rolled back; returns its row count, buffers, and the scans that ran.
 */
async function explainClaim(p: ClaimParams) {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    const { claimTenants, claim } = claimTransaction(db.schema);
    const walk = await explainPlan(
      client,
      claimTenants.text,
      claimTenants.values(claimTenantsVariables(p)),
    );
    // The locks are the session's already: the walk run again picks the same tenants.
    const locked = await lockClaimTenants(db.store, client, p);
    const root = await explainPlan(client, claim.text, claim.values(claimVariables(p, locked)));
    await client.query('rollback');
    const nodes: Record<string, unknown>[] = [];
    const collect = (node: Record<string, unknown>) => {
      nodes.push(node);
      for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? [])
        collect(child);
    };
    collect(walk);
    collect(root);
    // Indexes of parts that never ran (the key walk when no tenant is stuck) do not count.
    const ran = nodes.filter((n) => (n['Actual Loops'] as number) > 0);
    const buffers = (n: Record<string, unknown>) =>
      (n['Shared Hit Blocks'] as number) + (n['Shared Read Blocks'] as number);
    return {
      rows: root['Actual Rows'] as number,
      buffers: buffers(walk) + buffers(root),
      /** Every scan of messages the plans hold, run or not. */
      messageScans: nodes
        .filter((n) => n['Relation Name'] === 'messages')
        .map((n) => n['Node Type']),
      /** The indexes of the scans that ran. */
      indexes: new Set(ran.map((n) => n['Index Name']).filter((name) => name !== undefined)),
    };
  } finally {
    client.release();
  }
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
    // Relay A is alive: its liveness lock is held for the whole test.
    const aliveA = await holdLiveness(db, relayA);
    onTestFinished(() => aliveA.release());
    const first = await claimBatch(db.store, params(relayA, { batchSize: 4, maxTenants: 1 }));
    expect(new Set(first.map((r) => r.tenant_id))).toEqual(new Set(['a']));
    // Tenant a is in flight at relay A: relay B gets only tenant b.
    const second = await claimBatch(db.store, params(relayB));
    expect(new Set(second.map((r) => r.tenant_id))).toEqual(new Set(['b']));
    // Relay A continues tenant a after its own in-flight rows, in id order.
    const third = await claimBatch(db.store, params(relayA, { inFlight: first.map((r) => r.id) }));
    expect([...seqs(first, 'a'), ...seqs(third, 'a')]).toEqual(
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
    const rows = await claimBatch(db.store, params(relay, { cursor: 'b', skippedTenants: ['d'] }));
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
    const measure = async () => {
      await db.pool.query(`delete from "${db.schema}".tenant_leases`);
      await db.pool.query(`vacuum analyze "${db.schema}".messages`);
      return explainClaim(params(randomUUID(), { skippedTenants: ['paused'], batchSize: 100 }));
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
      // No tenant is stuck: the key walk (messages_pending_key_idx) never runs.
      expect(run.indexes).toEqual(new Set(['messages_pending_idx']));
      // The picked rows are read again by their addresses, not through the primary key.
      expect(run.messageScans).toContain('Tid Scan');
    }
    // 99,000 more held rows (over 1,200 heap pages) may cost only what a
    // deeper index costs, about a page per probe: nothing walks them.
    expect(large.buffers).toBeLessThan(small.buffers * 1.5 + 100);
  });

  it('reads tenants through messages_pending_idx only, even where the key index is the smaller one', async () => {
    // 50,000 rows come and go: messages_pending_idx keeps its pages, while
    // messages_pending_key_idx, rebuilt (as migration 0003 builds it on a
    // table in use), is compact. The planner takes the smaller index wherever
    // it can; it must not be able to for tenant reads, or a tenant's window
    // could be planned as a scan and sort of its whole backlog.
    await insertRows('gone', ['a'], 50_000);
    await db.pool.query(`delete from "${db.schema}".messages`);
    await enqueue(
      db.pool,
      Array.from({ length: 200 }, (_, i) => orderEvent('x', `t${i % 20}`, i)),
      { schema: db.schema },
    );
    // VACUUM removes the deleted rows only once no transaction in the
    // database may still see them, and other test files hold transactions
    // open for seconds: until then REINDEX keeps them in the key index too.
    // So vacuum and rebuild until the deleted rows are gone (bounded).
    const pageCounts = async () => {
      await db.pool.query(`vacuum analyze "${db.schema}".messages`);
      await db.pool.query(`reindex index "${db.schema}".messages_pending_key_idx`);
      const { rows } = await db.pool.query(
        `select relname, relpages from pg_class where relnamespace = $1::regnamespace
           and relname in ('messages_pending_idx', 'messages_pending_key_idx')`,
        [db.schema],
      );
      return Object.fromEntries(rows.map((r) => [r.relname, r.relpages]));
    };
    let pages = await pageCounts();
    const deadline = Date.now() + 30_000;
    while (pages.messages_pending_key_idx >= pages.messages_pending_idx && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      pages = await pageCounts();
    }
    expect(pages.messages_pending_key_idx).toBeLessThan(pages.messages_pending_idx);
    const run = await explainClaim(params(randomUUID(), { batchSize: 100 }));
    expect(run.rows).toBe(100);
    expect(run.indexes).toEqual(new Set(['messages_pending_idx']));
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
          const p = params(randomUUID());
          const locked = await lockClaimTenants(db.store, client, p);
          const { claim } = claimTransaction(db.schema);
          const plan = await client.query({
            text: `explain (analyze, format json) ${claim.text}`,
            values: claim.values(claimVariables(p, locked)),
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
        query: pool.query.bind(pool),
      } as unknown as pg.Pool;
      expect(
        await claimBatch(createOutboxStore(spy, db.schema), params(randomUUID())),
      ).toHaveLength(1);
      const jitOff = sent.findIndex((text) => /set_config\('jit', 'off', true\)/.test(text));
      const claim = sent.indexOf(claimTransaction(db.schema).claim.text);
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
      first = await claimBatch(db.store, params(relay));
      expect(seqs(first, 'acme')).toEqual([2]);
      await late.query('commit');
    } finally {
      late.release();
    }
    // The relay still holds seq 2 in flight; the late row must be claimable all the same.
    const second = await claimBatch(db.store, params(relay, { inFlight: first.map((r) => r.id) }));
    expect(seqs(second, 'acme')).toEqual([1]);
  });
});

describe('the claim with an ordering key blocked behind a failing row', () => {
  it("gives a tenant's other keys, in order, while one key's head backs off with 5,000 rows behind it", async () => {
    // One row of key a older than everything, then key K: its head backing
    // off and 5,000 rows behind it, then keys a, b and c, interleaved.
    await insertRows('acme', ['a'], 1);
    await insertRows('acme', ['K'], 5000);
    await backOffHead('acme', 'K');
    await insertRows('acme', ['a', 'b', 'c'], 40, 1);
    const seqs = (first: number, last: number) =>
      Array.from({ length: last - first + 1 }, (_, i) => first + i);

    // The window (the tenant's 500 oldest rows) holds a's first row and K's blocked rows only.
    const rows = await claimBatch(db.store, params(randomUUID()));
    const byKey = keySeqs(rows);
    expect(byKey.get('K')).toBeUndefined();
    expect(byKey.get('a')).toEqual(seqs(0, 40));
    expect(byKey.get('b')).toEqual(seqs(1, 40));
    expect(byKey.get('c')).toEqual(seqs(1, 40));

    // Small claims (3 rows of a key each) continue every key in order, claim after claim.
    await db.pool.query(`delete from "${db.schema}".tenant_leases`);
    const claims = await claimAll({ batchSize: 30 }, 50);
    expect(claims.length).toBeGreaterThan(3);
    const all = keySeqs(claims.flat());
    expect(all.get('K')).toBeUndefined();
    expect(all.get('a')).toEqual(seqs(0, 40));
    expect(all.get('b')).toEqual(seqs(1, 40));
    expect(all.get('c')).toEqual(seqs(1, 40));
  });

  it('claims the free rows of a key up to its backing-off row, and none after it, in the window or past it', async () => {
    // K's first row is free and its second backs off; key b fills the rest
    // of the window (500 rows) and more; K goes on past the window.
    await insertRows('acme', ['K'], 2);
    await db.pool.query(
      `update "${db.schema}".messages set attempts = 1, available_at = now() + interval '1 hour'
       where id = (select max(id) from "${db.schema}".messages)`,
    );
    await insertRows('acme', ['b'], 600);
    await insertRows('acme', ['K'], 20, 2);
    const byKey = keySeqs(await claimBatch(db.store, params(randomUUID())));
    expect(byKey.get('K')).toEqual([0]);
    expect(byKey.get('b')).toEqual(Array.from({ length: 498 }, (_, i) => i));
  });

  it('serves every key in turn when more keys wait than one claim visits', async () => {
    await insertRows('acme', ['K'], 200);
    await backOffHead('acme', 'K');
    const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`);
    await insertRows('acme', keys, 100);
    // A claim of 10 rows reads at most 10 keys (1 row each) of the tenant. The
    // relay keeps everything in flight and no key runs out of rows here, so
    // the keys a fixed walk would visit first could take every claim: only a
    // walk that starts somewhere else each time reaches all 60.
    const relay = randomUUID();
    const inFlight: string[] = [];
    const served = new Set<string>();
    let claims = 0;
    while (served.size < keys.length && claims < 400) {
      const rows = await claimBatch(db.store, params(relay, { batchSize: 10, inFlight }));
      claims += 1;
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) served.add(String(row.ordering_key));
      inFlight.push(...rows.map((r) => r.id));
    }
    expect(served).toEqual(new Set(keys));
    // Each key's rows still went out in order, claim after claim.
    const rows = (
      await db.pool.query(
        `select id::text as id, ordering_key, payload from "${db.schema}".messages where id = any ($1::bigint[]) order by id`,
        [inFlight],
      )
    ).rows;
    for (const [key, seqs] of keySeqs(rows)) {
      expect(key).not.toBe('K');
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i));
    }
  });

  it("costs the same with a blocked key's backlog of 1,000 or 100,000 rows (the walk reads a few of its rows)", async () => {
    await enqueue(
      db.pool,
      Array.from({ length: 200 }, (_, i) => orderEvent('x', `t${i % 20}`, i)),
      { schema: db.schema },
    );
    /** Tenant stuck: key K (head backing off, `backlog` rows) before 20 keys of 5 rows. */
    const build = async (backlog: number) => {
      await db.pool.query(`delete from "${db.schema}".messages where tenant_id = 'stuck'`);
      await insertRows('stuck', ['K'], backlog);
      await backOffHead('stuck', 'K');
      await insertRows(
        'stuck',
        Array.from({ length: 20 }, (_, i) => `key-${i}`),
        5,
      );
      await db.pool.query(`delete from "${db.schema}".tenant_leases`);
      await db.pool.query(`vacuum analyze "${db.schema}".messages`);
    };
    const measure = async () => {
      // 21 tenants share a claim of 100: 10 rows of the stuck tenant's window
      // are K's, so it is walked key by key. The walk starts at random:
      // take the most expensive of a few claims.
      const runs = [];
      for (let i = 0; i < 5; i++) {
        runs.push(await explainClaim(params(randomUUID(), { batchSize: 100 })));
        await db.pool.query(`delete from "${db.schema}".tenant_leases`);
      }
      return runs.reduce((a, b) => (b.buffers > a.buffers ? b : a));
    };
    await build(1000);
    const small = await measure();
    await build(100_000);
    const large = await measure();

    for (const run of [small, large]) {
      expect(run.rows).toBe(100);
      expect(run.messageScans).not.toContain('Seq Scan');
      expect(run.indexes).toEqual(new Set(['messages_pending_idx', 'messages_pending_key_idx']));
    }
    // The stuck tenant's other keys are in the claim.
    const rows = await claimBatch(db.store, params(randomUUID(), { batchSize: 100 }));
    const stuck = rows.filter((r) => r.tenant_id === 'stuck');
    expect(stuck.length).toBeGreaterThan(0);
    expect(stuck.every((r) => r.ordering_key !== 'K')).toBe(true);
    // 99,000 more blocked rows may cost only what a deeper index costs.
    expect(large.buffers).toBeLessThan(small.buffers * 1.5 + 100);
  });

  it("takes a tenant leased to a relay whose liveness lock is free at once, but never a live relay's before its lease ends", async () => {
    await enqueue(db.pool, [orderEvent('x', 'a', 1), orderEvent('x', 'b', 1)], {
      schema: db.schema,
    });
    const live = randomUUID();
    const dead = randomUUID();
    const alive = await holdLiveness(db, live);
    onTestFinished(() => alive.release());
    await db.pool.query(
      `insert into "${db.schema}".tenant_leases (tenant_id, relay_id, leased_until)
       values ('a', $1, now() + interval '1 hour'), ('b', $2, now() + interval '1 hour')`,
      [live, dead],
    );
    const rows = await claimBatch(db.store, params(randomUUID()));
    expect(rows.map((r) => r.tenant_id)).toEqual(['b']);
  });

  it('claims nothing for a relay that must hold its liveness lock and does not', async () => {
    await enqueue(db.pool, orderEvent('x', 'a', 1), { schema: db.schema });
    const relay = randomUUID();
    expect(await claimBatch(db.store, params(relay, { requireLiveness: true }))).toEqual([]);
    const alive = await holdLiveness(db, relay);
    onTestFinished(() => alive.release());
    expect(await claimBatch(db.store, params(relay, { requireLiveness: true }))).toHaveLength(1);
  });

  it('is not stalled by a relay frozen inside its claim: other tenants go on at once, its own after PostgreSQL ends that session (5 s)', async () => {
    await enqueue(db.pool, [orderEvent('x', 'a', 1), orderEvent('x', 'b', 1)], {
      schema: db.schema,
    });
    // Tenant b is leased to a live relay: the frozen one's walk leaves it alone.
    const holderOfB = randomUUID();
    const aliveB = await holdLiveness(db, holderOfB);
    onTestFinished(() => aliveB.release());
    await db.pool.query(
      `insert into "${db.schema}".tenant_leases (tenant_id, relay_id, leased_until)
       values ('b', $1, now() + interval '1 hour')`,
      [holderOfB],
    );
    // A "frozen" relay: it began a claim, locked its tenants (a) and stopped there.
    const frozen = new pg.Client({ connectionString: db.url });
    frozen.on('error', () => undefined);
    await frozen.connect();
    try {
      await frozen.query(claimTransaction(db.schema).begin);
      const locked = await lockClaimTenants(db.store, frozen, params(randomUUID()));
      expect(locked.tenants).toEqual(['a']);
      // b's holder claims at once, while the frozen session still holds a.
      const rowsOfB = await claimBatch(db.store, params(holderOfB));
      expect(rowsOfB.map((r) => r.tenant_id)).toEqual(['b']);
      await expect(frozen.query('select 1')).resolves.toBeDefined();
      // Another relay skips a (its claim lock is held) rather than waiting for it.
      expect(await claimBatch(db.store, params(randomUUID()))).toEqual([]);
      // Once PostgreSQL has ended the frozen session, a is claimed.
      const started = Date.now();
      let rowsOfA: ClaimedRow[] = [];
      await waitFor(
        async () => {
          rowsOfA = await claimBatch(db.store, params(randomUUID()));
          return rowsOfA.length > 0;
        },
        'tenant a to be claimable again',
        15_000,
      );
      expect(rowsOfA.map((r) => r.tenant_id)).toEqual(['a']);
      expect(Date.now() - started).toBeLessThan(15_000);
      await expect(frozen.query('select 1')).rejects.toThrow();
    } finally {
      await frozen.end().catch(() => undefined);
    }
  });

  it('lets claims of different tenants run at the same time: one claim holding its tenants does not delay another', async () => {
    await enqueue(
      db.pool,
      ['a', 'b'].flatMap((t) => [orderEvent('x', t, 1), orderEvent('x', t, 2)]),
      { schema: db.schema },
    );
    const relayA = randomUUID();
    const relayB = randomUUID();
    const alive = [await holdLiveness(db, relayA), await holdLiveness(db, relayB)];
    onTestFinished(async () => {
      for (const lock of alive) await lock.release();
    });
    await db.pool.query(
      `insert into "${db.schema}".tenant_leases (tenant_id, relay_id, leased_until)
       values ('a', $1, now() + interval '1 hour'), ('b', $2, now() + interval '1 hour')`,
      [relayA, relayB],
    );
    // Relay A's claim is open (between its statements, holding tenant a).
    const claimA = await db.pool.connect();
    try {
      const { begin, claim } = claimTransaction(db.schema);
      await claimA.query(begin);
      const p = params(relayA);
      const locked = await lockClaimTenants(db.store, claimA, p);
      expect(locked.tenants).toEqual(['a']);
      // Relay B claims its tenant meanwhile, without waiting for A's transaction.
      const rowsOfB = await claimBatch(db.store, params(relayB));
      expect(rowsOfB.map((r) => r.tenant_id)).toEqual(['b', 'b']);
      const { rows: rowsOfA } = await claimA.query<ClaimedRow>({
        text: claim.text,
        values: claim.values(claimVariables(p, locked)),
      });
      await claimA.query('commit');
      expect(rowsOfA.map((r) => r.tenant_id)).toEqual(['a', 'a']);
    } finally {
      claimA.release();
    }
  });

  it('gives each tenant to one relay while eight relays claim at once, round after round', async () => {
    const tenants = Array.from({ length: 24 }, (_, i) => `t${i}`);
    await enqueue(
      db.pool,
      tenants.flatMap((t) => Array.from({ length: 20 }, (_, i) => orderEvent('x', t, i))),
      { schema: db.schema },
    );
    const relays = Array.from({ length: 8 }, () => randomUUID());
    const alive = await Promise.all(relays.map((relay) => holdLiveness(db, relay)));
    onTestFinished(async () => {
      for (const lock of alive) await lock.release();
    });
    const inFlight = new Map(relays.map((relay) => [relay, [] as string[]]));
    // Each relay's round-robin cursor starts somewhere else, as after a while of running.
    const cursors = new Map(relays.map((relay, i) => [relay, tenants[i * 3] as string]));
    const holders = new Map<string, Set<string>>();
    const claimedIds = new Set<string>();
    let claimed = 0;
    for (let round = 0; round < 12; round++) {
      const claims = await Promise.all(
        relays.map((relay) =>
          claimBatch(
            db.store,
            params(relay, {
              batchSize: 12,
              maxTenants: 6,
              cursor: cursors.get(relay) ?? '',
              inFlight: inFlight.get(relay) ?? [],
            }),
          ).then((rows) => ({ relay, rows })),
        ),
      );
      for (const { relay, rows } of claims) {
        if (rows[0]) cursors.set(relay, rows[0].next_cursor);
        for (const row of rows) {
          expect(claimedIds.has(row.id)).toBe(false);
          claimedIds.add(row.id);
          holders.set(row.tenant_id, (holders.get(row.tenant_id) ?? new Set()).add(relay));
          inFlight.get(relay)?.push(row.id);
        }
        claimed += rows.length;
      }
    }
    // Rows went out, to more than one relay, and no tenant ever had two holders.
    expect(claimed).toBeGreaterThan(40);
    expect(new Set([...holders.values()].flatMap((set) => [...set])).size).toBeGreaterThan(1);
    for (const [tenant, set] of holders) expect([tenant, set.size]).toEqual([tenant, 1]);
  });

  it('waits for a relay of an earlier version holding the schema claim lock (a rolling upgrade keeps one holder per tenant)', async () => {
    await enqueue(db.pool, orderEvent('x', 'a', 1), { schema: db.schema });
    // Relays before tenant locks took this lock exclusively for each claim.
    const earlier = await db.pool.connect();
    try {
      await earlier.query('begin');
      await earlier.query(
        `select pg_advisory_xact_lock(hashtextextended('outbox-relay:claim:${db.schema}', 0))`,
      );
      let done = false;
      const claim = claimBatch(db.store, params(randomUUID())).then((rows) => {
        done = true;
        return rows;
      });
      await waitFor(async () => {
        const { rows } = await db.pool.query(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'`,
        );
        return rows[0]?.n === 1;
      }, 'the claim to wait for the earlier relay');
      expect(done).toBe(false);
      await earlier.query('commit');
      expect(await claim).toHaveLength(1);
    } finally {
      earlier.release();
    }
  });
});
