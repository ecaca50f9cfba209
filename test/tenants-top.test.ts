/**
 * `outbox-relay tenants --top` as ops run it: in a terminal (a pseudo-terminal
 * made by util-linux `script`), redrawn in place until Ctrl-C, which exits 0
 * and gives the terminal back; piped, one plain table per interval with no
 * control codes; with --json, one report. Tenant ids are escaped in tables.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { CLI, runCli, startCli } from './helpers/cli.js';
import { cliEnv, useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('tenantstop', { resetEachTest: true });
const dir = mkdtempSync(join(tmpdir(), 'outbox-tenantstop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A tenant id that would clear the screen and break the row if printed raw. */
const EVIL = 'evil\x1b[2J\n';
const EVIL_SHOWN = 'evil\\x1b[2J\\n';

/** Some pending rows of a quiet tenant and of EVIL, written before the command starts. */
async function seed(): Promise<void> {
  const { db, broker } = fixture;
  for (const tenant of ['quiet', EVIL]) {
    await enqueue(db.pool, orderEvent(broker.exchange, tenant, 0), { schema: db.schema });
  }
}

/** Writes rows for `busy` until stopped (at most 5,000, or 30 s). */
function startWriter(): { stop(): Promise<void> } {
  const { db, broker } = fixture;
  let stopped = false;
  const done = (async () => {
    const deadline = Date.now() + 30_000;
    for (let i = 0; !stopped && i < 1000 && Date.now() < deadline; i++) {
      await enqueue(
        db.pool,
        Array.from({ length: 5 }, (_, j) => orderEvent(broker.exchange, 'busy', i * 5 + j)),
        { schema: db.schema },
      );
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** The tenant rows of each table in `output`, as their first column, in order. */
function tables(output: string): string[][] {
  return output
    .split('flag source: ')
    .slice(1)
    .map((table) =>
      table
        .split(/\r?\n/)
        .slice(3)
        .filter((line) => /\s(publishing|paused|throttled|unknown)/.test(line))
        .map((line) => line.split(/\s+/)[0] ?? ''),
    );
}

describe('outbox-relay tenants --top', () => {
  it('prints a plain table per interval, fastest writer first, and exits 0 on SIGINT', async () => {
    await seed();
    const writer = startWriter();
    const top = startCli(['tenants', '--top', '--interval', '1'], cliEnv(fixture));
    try {
      await waitFor(() => tables(top.output()).length >= 2, 'two tables', 20_000);
    } finally {
      top.child.kill('SIGINT');
      await writer.stop();
    }
    expect(await top.exited).toBe(0);
    const output = top.output();
    expect(output).not.toContain('\x1b');
    expect(output.startsWith('flag source: none\n')).toBe(true);
    expect(output).toMatch(/^TENANT\s+WRITES\/S\s+PENDING\s+OLDEST\s+STATE$/m);
    expect(output).toMatch(/^\d\d:\d\d:\d\d UTC, over 1\.\d+s: \S+ writes\/s, \d+ pending /m);
    const last = tables(output).at(-1) ?? [];
    expect(last[0]).toBe('busy');
    expect(last).toEqual(expect.arrayContaining(['quiet', EVIL_SHOWN]));
    expect(output).toContain(`${EVIL_SHOWN}  `);
  });

  it('redraws in place on a terminal, and Ctrl-C exits 0 with the cursor and screen restored', async () => {
    await seed();
    const env = { ...cliEnv(fixture), PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
    // `script` runs the command on a pseudo-terminal; what we write to its
    // stdin is typed there, so ^C reaches the command as SIGINT.
    const command = `exec '${process.execPath}' '${CLI}' tenants --top --interval 1`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: { ...env, LOG_LEVEL: 'warn', COLUMNS: '120', LINES: '30' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await waitFor(() => tables(output).length >= 1, 'a table on the terminal', 20_000);
    } finally {
      child.stdin.write('\x03');
    }
    expect(await exited).toBe(0);
    expect(output.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true);
    expect(output.trimEnd().endsWith('\x1b[?25h\x1b[?1049l')).toBe(true);
    // Each redraw starts at the top left; the tenant's escape sequence stays text.
    expect(output).toContain('\x1b[H');
    expect(output).toContain(EVIL_SHOWN);
    expect(output).not.toContain('\x1b[2J');
  });

  it('--json takes two reads, prints one report and exits 1 with the reason when the flags are unavailable', async () => {
    await seed();
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"flags": {');
    const result = await runCli(
      ['tenants', '--top', '--json', '--interval', '1'],
      cliEnv(fixture, { OUTBOX_FLAGS_FILE: broken }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^outbox-relay: tenant flags unavailable \(flags file .*broken\.json: .*\): tenant states are unknown\n$/,
    );
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      flagSource: { source: 'flags-file', initialized: false },
      intervalSeconds: expect.any(Number),
      writesPerSecond: 0,
      pending: 2,
      activeTenants: 2,
    });
    expect(report.intervalSeconds).toBeGreaterThanOrEqual(0.9);
    expect(report.tenants).toContainEqual({
      tenantId: EVIL,
      writesPerSecond: 0,
      pending: 1,
      oldestPendingSeconds: expect.any(Number),
      paused: null,
      rateLimit: null,
      state: 'unknown',
    });
  });
});
