/**
 * `outbox-relay claim --explain` prints one claim as a psql script; run
 * through psql against the test database, it shows both statements' plans
 * and leaves nothing behind.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../scripts/process-runner.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { runCli } from './helpers/cli.js';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';
import { orderEvent } from './helpers/messages.js';

/** A tenant id that needs quoting in psql, in an array literal and in SQL. */
const AWKWARD = `o'brien "x" \\y`;

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase('claim_explain');
  dir = mkdtempSync(join(tmpdir(), 'claim-explain-'));
  env = { DATABASE_URL: db.url, OUTBOX_SCHEMA: db.schema };
  await enqueue(
    db.pool,
    [
      ...[1, 2, 3, 4].map((seq) => orderEvent('x', 'acme', seq)),
      ...[1, 2, 3].map((seq) => orderEvent('x', AWKWARD, seq)),
    ],
    { schema: db.schema },
  );
});

afterAll(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
});

/** Prints the script with `args`, runs it through psql; returns psql's output. */
async function explainThroughPsql(args: string[]): Promise<string> {
  const printed = await runCli(['claim', '--explain', ...args], env);
  expect(printed.stderr).toBe('');
  expect(printed.code).toBe(0);
  const file = join(dir, `claim-${args.length}.sql`);
  writeFileSync(file, printed.stdout);
  const psql = await runProcess('psql', ['-X', '-q', '-d', db.url, '-f', file], {
    env: { PATH: process.env.PATH },
    timeoutMs: 30_000,
  });
  expect(psql.stderr).toBe('');
  expect(psql.code).toBe(0);
  return psql.stdout;
}

/** The actual row count of each plan's top node, in order. */
function topRows(output: string): number[] {
  return [...output.matchAll(/QUERY PLAN *\n-+\n[^\n]*?actual time=\S+ rows=(\d+)/g)].map((m) =>
    Number(m[1]),
  );
}

describe('outbox-relay claim --explain', () => {
  it("prints a psql script that EXPLAINs the tenant walk and the claim of the configured database's tenants", async () => {
    const output = await explainThroughPsql([]);
    expect(output.match(/Execution Time/g)).toHaveLength(2);
    expect(output).toMatch(/messages_pending_idx/);
    // The tenant walk returns its one row; the claim, every pending row (of both tenants).
    expect(topRows(output)).toEqual([1, 7]);
    // Rolled back: no lease stays.
    const { rows } = await db.pool.query(
      `select count(*)::int as n from "${db.schema}".tenant_leases`,
    );
    expect(rows[0].n).toBe(0);
    expect((await db.counts()).pending).toBe(7);
  });

  it('claims only the tenants given with --tenant, whatever characters their ids hold', async () => {
    const output = await explainThroughPsql(['--tenant', AWKWARD]);
    expect(topRows(output)).toEqual([1, 3]);
  });

  it("with --generic, EXPLAINs the relay's named statements under their generic plan", async () => {
    const output = await explainThroughPsql(['--generic']);
    expect(output.match(/Execution Time/g)).toHaveLength(2);
    expect(topRows(output)).toEqual([1, 7]);
  });

  it('refuses to run without --explain', async () => {
    const result = await runCli(['claim'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/needs --explain/);
  });
});
