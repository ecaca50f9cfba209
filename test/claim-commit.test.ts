/**
 * A claim's commit is sent when its rows come back, and its batch publishes
 * meanwhile (docs/architecture.md, "Claiming", step 10). Here the commit is
 * held back, or made to fail, by a deferred constraint trigger on the lease
 * table: the trigger runs inside the claim's commit, on the real database.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import type { TenantGate } from '../src/relay/tenant-gate.js';
import { allowAllTenants } from '../src/tenants/allow-all-gate.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { type LoggedEntry, recordingLogger } from './helpers/recording-logger.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('claim_commit', { resetEachTest: true });
/** The advisory lock key the trigger takes (shared) at commit. */
const COMMIT_GATE = 81_300_001;

let control: pg.Client;

beforeAll(async () => {
  const { schema } = fixture.db;
  // At commit, every lease written by the transaction runs this trigger: it
  // waits for COMMIT_GATE (while a test holds it exclusively), and raises
  // while commit_control.fail is set.
  await fixture.db.pool.query(`
    create table "${schema}".commit_control (fail boolean not null);
    insert into "${schema}".commit_control values (false);
    create function "${schema}".gate_commit() returns trigger language plpgsql as $$
    begin
      perform pg_advisory_xact_lock_shared(${COMMIT_GATE});
      if (select fail from "${schema}".commit_control) then
        raise exception 'claim commit refused by the test';
      end if;
      return null;
    end $$;
    create constraint trigger gate_commit after insert or update on "${schema}".tenant_leases
      deferrable initially deferred for each row execute function "${schema}".gate_commit();`);
  control = new pg.Client({ connectionString: fixture.db.url });
  await control.connect();
});

beforeEach(async () => {
  await control.query(`update "${fixture.db.schema}".commit_control set fail = false`);
});

afterAll(async () => {
  await control?.end();
});

/** Whether a backend of this database is running `commit` and waiting for COMMIT_GATE. */
async function commitWaitingOnGate(): Promise<boolean> {
  const { rows } = await control.query<{ waiting: number }>(
    `select count(*)::int as waiting
       from pg_stat_activity a join pg_locks l on l.pid = a.pid and not l.granted
      where a.datname = current_database() and a.query = 'commit'
        and l.locktype = 'advisory' and l.objid = $1`,
    [COMMIT_GATE],
  );
  return (rows[0]?.waiting ?? 0) > 0;
}

/** Whether `logged` holds a failed claim whose error is the trigger's refusal. */
function commitRefusalLogged(logged: readonly LoggedEntry[]): boolean {
  return logged.some(
    (e) =>
      e.message === 'claim failed; retrying' &&
      e.fields?.error instanceof Error &&
      e.fields.error.message === 'claim commit refused by the test',
  );
}

async function leaseHolders(): Promise<string[]> {
  const { rows } = await control.query<{ relay_id: string }>(
    `select relay_id::text from "${fixture.db.schema}".tenant_leases where leased_until > now()`,
  );
  return rows.map((r) => r.relay_id);
}

describe("a claim's commit", () => {
  it('is under way while its batch publishes and settles: runOnce', async () => {
    const { relay, relayId, close } = await createTestRelay(fixture.db, fixture.broker.url);
    let pass: Promise<unknown> | undefined;
    try {
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
        schema: fixture.db.schema,
      });
      await control.query('select pg_advisory_lock($1)', [COMMIT_GATE]);
      pass = relay.runOnce();
      await waitFor(() => fixture.broker.received.length === 1, 'the message to arrive');
      await waitFor(
        async () => (await fixture.db.counts()).pending === 0,
        'the published row to be deleted',
      );
      // Published and deleted while the claim's commit still waits: its lease
      // is not written yet, and the pass has not ended.
      expect(await commitWaitingOnGate()).toBe(true);
      expect(await leaseHolders()).toEqual([]);
      let ended = false;
      pass
        .finally(() => {
          ended = true;
        })
        .catch(() => undefined);
      await control.query('select 1'); // a round trip: the pass had its chance to end
      expect(ended).toBe(false);
      await control.query('select pg_advisory_unlock($1)', [COMMIT_GATE]);
      expect(await pass).toEqual({ claimed: 1, published: 1, held: 0, failed: 0, dead: 0 });
      expect(await leaseHolders()).toEqual([relayId]);
    } finally {
      await control.query('select pg_advisory_unlock_all()');
      await pass?.catch(() => undefined);
      await close();
    }
  });

  it('is under way while its batch publishes: the loop', async () => {
    const { relay, relayId, close } = await createTestRelay(fixture.db, fixture.broker.url);
    try {
      await control.query('select pg_advisory_lock($1)', [COMMIT_GATE]);
      relay.start();
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), {
        schema: fixture.db.schema,
      });
      await waitFor(() => fixture.broker.received.length === 1, 'the message to arrive');
      expect(await commitWaitingOnGate()).toBe(true);
      expect(await leaseHolders()).toEqual([]);
      // A row of another tenant, committed while the claim commits, follows
      // once the commit is done.
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'globex', 1), {
        schema: fixture.db.schema,
      });
      await control.query('select pg_advisory_unlock($1)', [COMMIT_GATE]);
      await waitFor(() => fixture.broker.received.length === 2, 'the second message to arrive');
      expect(fixture.broker.received.map((m) => m.tenantId)).toEqual(['acme', 'globex']);
      await waitFor(
        async () => (await fixture.db.counts()).pending === 0,
        'both rows to be deleted',
      );
      expect(await leaseHolders()).toEqual([relayId, relayId]);
      expect(relay.claimFailing()).toBeUndefined();
    } finally {
      await control.query('select pg_advisory_unlock_all()');
      await close();
    }
  });

  it("that has failed by its batch's publish turn fences the batch: left pending, claimed again", async () => {
    const { schema } = fixture.db;
    const { logger, logged } = recordingLogger();
    // The first decision of the gate (asked right before publishing) waits
    // until the test lets it go: by then the claim's commit has failed.
    const open = allowAllTenants();
    let letGo: () => void = () => undefined;
    const decided = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    let first = true;
    const gate: TenantGate = {
      decide: async (tenants) => {
        if (first) {
          first = false;
          await decided;
        }
        return open.decide(tenants);
      },
      pausedTenants: () => open.pausedTenants(),
      closed: () => open.closed(),
      onChange: (listener) => open.onChange(listener),
      status: () => open.status(),
      close: () => open.close(),
    };
    const { relay, close } = await createTestRelay(fixture.db, fixture.broker.url, {
      logger,
      gate,
    });
    try {
      await control.query(`update "${schema}".commit_control set fail = true`);
      relay.start();
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 1), { schema });
      await waitFor(() => commitRefusalLogged(logged), 'the failed commit to be reported');
      letGo();
      await waitFor(
        () =>
          logged.some(
            (e) =>
              e.message === 'not publishing a claimed batch: fenced' &&
              e.fields?.reason === 'the claim did not commit',
          ),
        'the batch to be fenced',
      );
      expect(fixture.broker.received).toHaveLength(0);
      expect((await fixture.db.counts()).pending).toBe(1);
      await control.query(`update "${schema}".commit_control set fail = false`);
      await waitFor(() => fixture.broker.received.length === 1, 'the message to arrive');
      await waitFor(async () => (await fixture.db.counts()).pending === 0, 'the row to be deleted');
      expect(fixture.broker.received.map((m) => JSON.parse(String(m.body)).seq)).toEqual([1]);
    } finally {
      letGo();
      await close();
    }
  });

  it('that fails leaves its published batch settled, is reported as a failed claim, and the relay claims on', async () => {
    const { schema } = fixture.db;
    const { logger, logged } = recordingLogger();
    const { relay, relayId, close } = await createTestRelay(fixture.db, fixture.broker.url, {
      logger,
    });
    try {
      await control.query(`update "${schema}".commit_control set fail = true`);
      relay.start();
      for (let seq = 1; seq <= 3; seq++) {
        await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', seq), {
          schema,
        });
      }
      await waitFor(() => fixture.broker.received.length === 3, 'the three messages to arrive');
      await waitFor(() => commitRefusalLogged(logged), 'the failed commit to be reported');
      // The broker confirmed them, so they are settled although no lease was written.
      await waitFor(
        async () => (await fixture.db.counts()).pending === 0,
        'the published rows to be deleted',
      );
      expect(await leaseHolders()).toEqual([]);
      await waitFor(() => relay.inFlight() === 0, 'the batches to end');
      await control.query(`update "${schema}".commit_control set fail = false`);
      await enqueue(fixture.db.pool, orderEvent(fixture.broker.exchange, 'acme', 4), { schema });
      await waitFor(() => fixture.broker.received.length === 4, 'the fourth message to arrive');
      await waitFor(() => relay.claimFailing() === undefined, 'claims to succeed again');
      expect(await leaseHolders()).toEqual([relayId]);
      const seqs = fixture.broker.received.map((m) => JSON.parse(String(m.body)).seq);
      expect(seqs).toEqual([1, 2, 3, 4]);
    } finally {
      await close();
    }
  });
});
