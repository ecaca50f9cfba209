import { describe, expect, it } from 'vitest';
import { printable } from '../src/cli/terminal-text.js';
import { enqueue } from '../src/outbox/enqueue.js';
import { runCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';

const fixture = useOutboxFixture('termtext', { resetEachTest: true });

/** A tenant id that, printed raw, paints itself red and fakes a paused row under it. */
const FAKE_ROW = 'evil\x1b[31m\nfake  999  1s  paused\x1b[0m';
const HOSTILE = [FAKE_ROW, 'bidi\u202eesrever', 'c1\x9b2J\x07\t\\x1b'];

/** Nothing but printable text and the newlines that end lines reaches the terminal. */
function expectPrintable(output: string): void {
  expect(output.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
}

describe('printable', () => {
  it.each([
    ['acme', 'acme'],
    ['tenant-ü-日本', 'tenant-ü-日本'],
    ['a\x1b[31mb', 'a\\x1b[31mb'],
    ['line\nnext\r\tend', 'line\\nnext\\r\\tend'],
    ['\x00\x7f\x85\x9b', '\\x00\\x7f\\x85\\x9b'],
    ['rtl\u202eltr\u2066\u200b\ufeff', 'rtl\\u202eltr\\u2066\\u200b\\ufeff'],
    ['sep\u2028para\u2029', 'sep\\u2028para\\u2029'],
    ['lone\ud800surrogate', 'lone\\ud800surrogate'],
    ['tag\u{e0041}', 'tag\\u{e0041}'],
    ['back\\slash', 'back\\\\slash'],
  ])('shows %j as %s', (raw, shown) => {
    expect(printable(raw)).toBe(shown);
  });

  it('never maps two different texts to the same output', () => {
    expect(printable('\x1b')).not.toBe(printable('\\x1b'));
  });
});

describe('human output of values from the database', () => {
  it('tenants shows hostile tenant ids escaped, one row each, and exact in --json', async () => {
    const { db, broker } = fixture;
    for (const tenant of HOSTILE) {
      await enqueue(db.pool, orderEvent(broker.exchange, tenant, 1), { schema: db.schema });
    }
    const table = await runCli(['tenants'], cliEnv(fixture));
    expect(table.code).toBe(0);
    expectPrintable(table.stdout);
    // The flag source, the header, one row per tenant: no row can be faked.
    expect(table.stdout.trimEnd().split('\n')).toHaveLength(2 + HOSTILE.length);
    expect(table.stdout).toContain('evil\\x1b[31m\\nfake  999  1s  paused\\x1b[0m  ');
    expect(table.stdout).toContain('bidi\\u202eesrever  ');
    expect(table.stdout).toContain('c1\\x9b2J\\x07\\t\\\\x1b  ');

    const json = await runCli(['tenants', '--json'], cliEnv(fixture));
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { tenants: { tenantId: string }[] };
    expect(report.tenants.map((t) => t.tenantId).sort()).toEqual([...HOSTILE].sort());
    expect(json.stdout).not.toContain('\x1b');
  });

  it('dead list shows hostile tenants, exchanges, routing keys and errors escaped', async () => {
    const { db } = fixture;
    const [row] = await enqueue(
      db.pool,
      orderEvent('ex\x1b[2J', FAKE_ROW, 1, { routingKey: 'key\r\u202e' }),
      { schema: db.schema },
    );
    await db.pool.query(
      `update "${db.schema}".messages
         set dead_at = now(), attempts = 3, last_error = $2 where message_id = $1`,
      [row?.messageId, 'boom\n3  acme  amq.direct x  attempts 1\x07'],
    );
    const listed = await runCli(['dead', 'list'], cliEnv(fixture));
    expect(listed.code).toBe(0);
    expectPrintable(listed.stdout);
    expect(listed.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(listed.stdout).toMatch(
      /^\d+ {2}[0-9a-f-]{36} {2}evil\\x1b\[31m\\nfake {2}999 {2}1s {2}paused\\x1b\[0m {2}ex\\x1b\[2J key\\r\\u202e {2}attempts 3 {2}dead \S+\n {4}boom\\n3 {2}acme {2}amq\.direct x {2}attempts 1\\x07\n$/,
    );

    const json = await runCli(['dead', 'list', '--json', '--limit=1'], cliEnv(fixture));
    const [dead] = JSON.parse(json.stdout) as { tenant_id: string; last_error: string }[];
    expect(dead).toMatchObject({
      tenant_id: FAKE_ROW,
      last_error: expect.stringMatching(/^boom\n/),
    });
  });

  it('purge escapes the tenant it names', async () => {
    const { db, broker } = fixture;
    await enqueue(db.pool, orderEvent(broker.exchange, FAKE_ROW, 1), { schema: db.schema });
    const refused = await runCli(['purge', '--tenant', FAKE_ROW], cliEnv(fixture));
    expect(refused.code).toBe(2);
    expectPrintable(refused.stderr);
    expect(refused.stderr).toMatch(/tenant evil\\x1b\[31m\\nfake .*add --yes to confirm/);

    const purged = await runCli(['purge', '--tenant', FAKE_ROW, '--yes'], cliEnv(fixture));
    expect(purged.code).toBe(0);
    expectPrintable(purged.stdout);
    expect(purged.stdout).toMatch(/^purged 1 pending events of tenant evil\\x1b\[31m\\nfake /);
  });
});
