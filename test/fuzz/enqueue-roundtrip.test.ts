/**
 * Fuzz: random messages through `enqueue`, then through a real relay to a real
 * RabbitMQ queue.
 *
 * Property, for every message: it is rejected with InvalidMessageError before
 * any SQL (the caller's transaction stays usable and saw no statement), or it
 * is committed and a consumer receives it byte for byte: body, content type,
 * type, message id, routing key, and headers as sent plus the relay's
 * x-tenant-id; messages of one ordering key arrive in order. The messages
 * (test/helpers/fuzz-messages.ts) are judged by an oracle
 * (test/helpers/fuzz-values.ts) that also says which must be accepted
 * (valid by docs/sql-contract.md) and which must be rejected (what JSON would
 * change or drop, what breaks a documented limit); where the contract and the
 * wire disagree, either outcome passes as long as what is accepted arrives
 * unchanged. A batch `enqueue` of the same messages rejects, naming a message
 * that is not valid, or accepts.
 *
 * One schema, one relay and one queue for the file, reused across runs; each
 * run waits until its rows are settled, then deletes them and waits until the
 * relay holds nothing (the relay is rebuilt if it never lets go).
 *
 * Reproduce a failure: the report prints the seed, the path and the shrunk
 * counterexample, and the command:
 *   FUZZ_SEED=<seed> FUZZ_PATH=<path> npm run fuzz -- test/fuzz/enqueue-roundtrip.test.ts
 * Long run: `npm run fuzz` (FUZZ_SECONDS per file, default 600, random seed printed).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../../src/errors.js';
import { enqueue } from '../../src/outbox/enqueue.js';
import type { InsertedMessage } from '../../src/outbox/insert-statements.js';
import type { Received } from '../helpers/broker.js';
import { useOutboxFixture } from '../helpers/fixture.js';
import {
  type Built,
  buildMessage,
  type Expected,
  type Run,
  runArbitrary,
  UUID,
} from '../helpers/fuzz-messages.js';
import { fuzzParameters, fuzzSettings } from '../helpers/fuzz-settings.js';
import { SHORT_STRING_BYTES, sameData, stringOfBytes } from '../helpers/fuzz-values.js';
import { createTestRelay, type TestRelay } from '../helpers/relay.js';
import { waitFor } from '../helpers/wait.js';

const FILE = 'test/fuzz/enqueue-roundtrip.test.ts';
const fixture = useOutboxFixture('fuzzenq');
const settings = fuzzSettings();
const { parameters, testTimeoutMs } = fuzzParameters<[Run]>(settings, {
  file: FILE,
  shortRuns: 100,
  shortMs: 25_000,
});

/** Rows that failed go dead on their second failed attempt: a dead row takes ~1 s, not minutes. */
const MAX_ATTEMPTS = 2;
/** Longest a run waits for its rows to be published or dead. */
const SETTLE_MS = 20_000;

const suffix = randomBytes(3).toString('hex');
/** Exchanges bound to the fixture's queue besides its own: a topic, and a fanout named with 255 bytes. */
const EXTRA_EXCHANGES = [
  { name: `fz.topic.${suffix}`, type: 'topic', pattern: '#' },
  {
    name: `${stringOfBytes(SHORT_STRING_BYTES - 12, 'é')}fz.${suffix}…`,
    type: 'fanout',
    pattern: '',
  },
] as const;

// ---------------------------------------------------------------------------
// The property

let relay: TestRelay;
let client: pg.PoolClient;
let running: Promise<unknown> | undefined;

function fieldRoot(field: string): string {
  return field.split(/[.[]/)[0] ?? field;
}

/** A pg client that counts the statements it is sent. */
function countingExecutor(): {
  executor: { query: pg.PoolClient['query'] };
  statements: () => number;
} {
  let statements = 0;
  const executor = {
    query: ((...args: Parameters<pg.PoolClient['query']>) => {
      statements += 1;
      return (client.query as (...a: unknown[]) => unknown)(...args);
    }) as pg.PoolClient['query'],
  };
  return { executor, statements: () => statements };
}

async function rowCount(): Promise<number> {
  const { rows } = await client.query(
    `select count(*)::int as n from "${fixture.db.schema}".messages`,
  );
  return rows[0].n;
}

/** Checks a rejection: typed, before any SQL, the transaction still usable, and it names a field that is not valid. */
async function checkRejection(
  error: unknown,
  statements: number,
  rowsBefore: number,
  built: Built,
  what: string,
): Promise<void> {
  if (!(error instanceof InvalidMessageError) || error.code !== 'INVALID_MESSAGE') {
    throw new Error(`${what}: rejected with ${errorText(error)}, not InvalidMessageError`, {
      cause: error,
    });
  }
  if (statements !== 0)
    throw new Error(`${what}: rejected after sending ${statements} statement(s): ${error.message}`);
  let after: number;
  try {
    after = await rowCount();
  } catch (cause) {
    throw new Error(
      `${what}: the transaction is unusable after the rejection (${errorText(cause)})`,
    );
  }
  if (after !== rowsBefore)
    throw new Error(`${what}: a rejected enqueue changed the row count ${rowsBefore} → ${after}`);
  if (built.judgement.verdict === 'valid') {
    throw new Error(`${what}: a valid message was rejected: ${error.message}`);
  }
  const root = fieldRoot(error.field);
  if (!built.suspects.has(root) && !built.suspects.has('message')) {
    throw new Error(
      `${what}: rejected for '${error.field}' (${error.message}), but the problem is in ${[...built.suspects].join(', ')}: ${built.judgement.reason}`,
    );
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error);
}

interface Accepted {
  id: string;
  messageId: string;
  built: Built;
  expected: Expected;
}

/** Enqueues one message in its own transaction; returns the accepted row, or undefined if rightly rejected. */
async function enqueueOne(built: Built, run: Run, index: number): Promise<Accepted | undefined> {
  const what = `message #${index} (${built.judgement.verdict}${built.judgement.reason ? `: ${built.judgement.reason}` : ''})`;
  await client.query('begin');
  let committed = false;
  try {
    const before = await rowCount();
    const { executor, statements } = countingExecutor();
    let inserted: InsertedMessage[];
    try {
      inserted = await enqueue(executor, built.message as never, {
        schema: fixture.db.schema,
        returnIds: true,
        ...(run.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: run.maxPayloadBytes }),
      });
    } catch (error) {
      await checkRejection(error, statements(), before, built, what);
      return undefined;
    }
    await client.query('commit');
    committed = true;
    if (built.judgement.verdict === 'invalid' || !built.expected) {
      throw new Error(`${what}: accepted, but it must be rejected`);
    }
    const [row] = inserted;
    if (inserted.length !== 1 || !row || !UUID.test(row.messageId)) {
      throw new Error(`${what}: enqueue returned ${JSON.stringify(inserted)}`);
    }
    const expected = built.expected;
    if (expected.messageId !== undefined && row.messageId !== expected.messageId) {
      throw new Error(`${what}: message id ${expected.messageId} came back as ${row.messageId}`);
    }
    return { id: row.id, messageId: row.messageId, built, expected };
  } finally {
    if (!committed) await client.query('rollback');
  }
}

/** The batch form: rejects naming a message that is not valid (before any SQL), or accepts them all. */
async function enqueueBatch(built: Built[], run: Run): Promise<void> {
  await client.query('begin');
  try {
    const before = await rowCount();
    const { executor, statements } = countingExecutor();
    let outcome: { inserted: number } | { error: unknown };
    try {
      const inserted = await enqueue(executor, built.map((b) => b.message) as never, {
        schema: fixture.db.schema,
        ...(run.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: run.maxPayloadBytes }),
      });
      outcome = { inserted: inserted.length };
    } catch (error) {
      outcome = { error };
    }
    if ('inserted' in outcome) {
      const invalid = built.findIndex((b) => b.judgement.verdict === 'invalid');
      if (invalid >= 0)
        throw new Error(`batch: accepted, but message #${invalid} must be rejected`);
      if (outcome.inserted !== built.length) {
        throw new Error(`batch: ${outcome.inserted} rows for ${built.length} messages`);
      }
      return;
    }
    const { error } = outcome;
    const index = error instanceof InvalidMessageError ? error.index : 0;
    const culprit = built[index];
    if (!culprit) throw new Error(`batch: rejected naming message #${index} of ${built.length}`);
    await checkRejection(error, statements(), before, culprit, `batch, message #${index}`);
  } finally {
    await client.query('rollback');
  }
}

/**
 * `value` without keys named __proto__: amqplib's decoder assigns each key
 * (`fields[key] = value`), so a consumer using amqplib never sees one (an
 * object value becomes the headers' prototype instead). The relay sends it.
 */
function withoutProtoKeys(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(withoutProtoKeys);
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== '__proto__')
      .map(([key, item]) => [key, withoutProtoKeys(item)]),
  );
}

function headerDiff(expected: unknown, actual: unknown): string {
  const show = (v: unknown) => fc.stringify(v).slice(0, 400);
  return `expected ${show(expected)}, received ${show(actual)}`;
}

/** Differences between what arrived and what was sent; empty when it arrived unchanged. */
function differences(copy: Received, accepted: Accepted, stored: Buffer): string[] {
  const e = accepted.expected;
  const problems: string[] = [];
  if (!copy.body.equals(stored))
    problems.push(
      `body differs from the stored payload (${copy.body.length} vs ${stored.length} bytes)`,
    );
  if ('bytes' in e.body) {
    if (!copy.body.equals(e.body.bytes))
      problems.push(`body bytes differ (${copy.body.length} vs ${e.body.bytes.length} bytes)`);
  } else {
    const text = copy.body.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(copy.body)) problems.push('body is not valid UTF-8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
      if (!sameData(e.body.json, parsed))
        problems.push(`JSON body: ${headerDiff(e.body.json, parsed)}`);
    } catch {
      problems.push(`body is not JSON: ${text.slice(0, 100)}`);
    }
  }
  const p = copy.properties;
  if (p.contentType !== e.contentType)
    problems.push(
      `contentType ${JSON.stringify(p.contentType)} ≠ ${JSON.stringify(e.contentType)}`,
    );
  if (p.type !== e.type)
    problems.push(`type ${JSON.stringify(p.type)} ≠ ${JSON.stringify(e.type)}`);
  if (copy.routingKey !== e.routingKey)
    problems.push(
      `routing key ${JSON.stringify(copy.routingKey)} ≠ ${JSON.stringify(e.routingKey)}`,
    );
  const headers = withoutProtoKeys(e.headers);
  if (!sameData(headers, p.headers ?? {}))
    problems.push(`headers: ${headerDiff(headers, p.headers)}`);
  return problems;
}

async function settleRun(accepted: Accepted[]): Promise<void> {
  const { db, broker } = fixture;
  const ids = accepted.map((a) => a.id);
  const messageIdOf = new Map(accepted.map((a) => [a.id, a.messageId]));
  const state = async (withPayload: boolean) =>
    (
      await db.pool.query<{
        id: string;
        published: boolean;
        dead: boolean;
        attempts: number;
        last_error: string | null;
        payload: Buffer | null;
      }>(
        `select id::text, published_at is not null as published, dead_at is not null as dead, attempts,
           last_error, ${withPayload ? 'payload' : 'null::bytea as payload'}
         from "${db.schema}".messages where id = any($1::bigint[])`,
        [ids],
      )
    ).rows;
  const arrived = (id: string) => broker.received.some((m) => m.messageId === messageIdOf.get(id));
  try {
    await waitFor(
      async () => (await state(false)).every((r) => r.dead || (r.published && arrived(r.id))),
      'every accepted row to be published and received, or dead',
      SETTLE_MS,
    );
  } catch {
    const rows = await state(false);
    const stuck = rows.filter((r) => !r.dead && !r.published);
    throw new Error(
      `not settled within ${SETTLE_MS} ms: ${stuck.length} row(s) still pending ` +
        `(${stuck.map((r) => `#${r.id} attempts ${r.attempts}: ${r.last_error ?? 'no error'}`).join('; ')}); ` +
        `${rows.filter((r) => r.published && !arrived(r.id)).length} published but never received`,
    );
  }
  const rows = new Map((await state(true)).map((r) => [r.id, r]));
  for (const a of accepted) {
    const row = rows.get(a.id);
    const what = `accepted message ${a.messageId} (${a.built.judgement.verdict}${a.built.judgement.reason ? `: ${a.built.judgement.reason}` : ''})`;
    if (!row) throw new Error(`${what}: its row is gone`);
    if (row.dead)
      throw new Error(`${what}: went dead after ${row.attempts} attempt(s): ${row.last_error}`);
    const copies = broker.received.filter((m) => m.messageId === a.messageId);
    for (const copy of copies) {
      const problems = differences(copy, a, row.payload ?? Buffer.alloc(0));
      if (problems.length > 0) throw new Error(`${what}: arrived changed: ${problems.join('; ')}`);
    }
  }
  // One ordering scope's messages arrive in the order they were committed.
  const firstArrival = (messageId: string) =>
    broker.received.findIndex((m) => m.messageId === messageId);
  const scopes = new Map<string, Accepted[]>();
  for (const a of accepted) {
    const key = `${a.expected.tenantId}\u0000${a.expected.orderingScope}`;
    scopes.set(key, [...(scopes.get(key) ?? []), a]);
  }
  for (const list of scopes.values()) {
    const order = list.map((a) => firstArrival(a.messageId));
    if (order.some((at, i) => i > 0 && at < (order[i - 1] as number))) {
      throw new Error(
        `messages of one ordering key arrived out of order: ${list.map((a) => a.messageId).join(', ')} arrived at ${order.join(', ')}`,
      );
    }
  }
}

/** Deletes every row and waits until the relay holds nothing; rebuilds the relay if it never lets go. */
async function reset(): Promise<void> {
  const { db, broker } = fixture;
  await db.pool.query(`delete from "${db.schema}".messages`);
  try {
    await waitFor(
      () => relay.relay.inFlight() === 0,
      'the relay to let go of deleted rows',
      15_000,
    );
  } catch {
    await relay.close();
    relay = await createRelay();
  }
  broker.received.length = 0;
}

async function createRelay(): Promise<TestRelay> {
  const created = await createTestRelay(fixture.db, fixture.broker.url, {
    channels: 2,
    maxAttempts: MAX_ATTEMPTS,
    retentionMs: 3_600_000,
    pollIntervalMs: 20,
    batchSize: 100,
  });
  created.relay.start();
  return created;
}

async function runOnce(run: Run): Promise<void> {
  const { broker } = fixture;
  broker.received.length = 0;
  try {
    const routes = {
      exchanges: [broker.exchange, ...EXTRA_EXCHANGES.map((e) => e.name)],
      queue: broker.queue,
    };
    const built = run.messages.map((spec) => buildMessage(spec, run, routes));
    await enqueueBatch(built, run);
    const accepted: Accepted[] = [];
    for (const [index, b] of built.entries()) {
      const a = await enqueueOne(b, run, index);
      if (a) accepted.push(a);
    }
    if (accepted.length > 0) await settleRun(accepted);
  } finally {
    await reset();
  }
}

beforeAll(async () => {
  const { broker, db } = fixture;
  for (const exchange of EXTRA_EXCHANGES) {
    await broker.channel.assertExchange(exchange.name, exchange.type, {
      durable: false,
      autoDelete: false,
    });
    await broker.channel.bindQueue(broker.queue, exchange.name, exchange.pattern);
  }
  client = await db.pool.connect();
  relay = await createRelay();
});

afterAll(async () => {
  await running?.catch(() => undefined);
  await relay?.close();
  client?.release();
  for (const exchange of EXTRA_EXCHANGES) {
    await fixture.broker?.channel.deleteExchange(exchange.name).catch(() => undefined);
  }
});

describe('enqueue, fuzzed, then published by a real relay', () => {
  it(
    'rejects each message before any SQL, or delivers it unchanged',
    async () => {
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(runArbitrary(1 + EXTRA_EXCHANGES.length), async (run) => {
          // A run interrupted by the time limit goes on in the background: the next waits for it.
          await running?.catch(() => undefined);
          runs += 1;
          const current = runOnce(run);
          running = current;
          await current;
        }),
        parameters,
      );
      await running?.catch(() => undefined);
      expect(runs).toBeGreaterThan(0);
    },
    testTimeoutMs,
  );
});
