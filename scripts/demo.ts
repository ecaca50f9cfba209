/**
 * End-to-end demo: the application enqueues events in its own transactions,
 * the relay (a separate process, as in production) publishes them to
 * RabbitMQ, and a consumer prints what arrives. Then the per-tenant kill
 * switch: tenant globex is paused through a flags file, its events wait in
 * the outbox while the other tenants' events flow, and once globex is resumed
 * its held events go out, in order.
 *
 * Run with `npm run demo` (which builds and migrates first). Uses DATABASE_URL,
 * AMQP_URL and OUTBOX_SCHEMA, with the same defaults as the relay.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import pg from 'pg';
import { enqueue, type OutboxMessage, SETTINGS } from '../src/index.js';
import { redactUrl } from '../src/redact-url.js';
import { type RunningProcess, runProcess, startProcess } from './process-runner.js';

const DATABASE_URL = process.env.DATABASE_URL || SETTINGS.databaseUrl.default;
const AMQP_URL = process.env.AMQP_URL || SETTINGS.amqpUrl.default;
// `npm run demo` migrates the schema named by OUTBOX_SCHEMA; enqueue must write to the same one.
const SCHEMA = process.env.OUTBOX_SCHEMA || SETTINGS.schema.default;
const PUBLISH_FLAG = SETTINGS.publishFlagKey.default;
const RATE_LIMIT_FLAG = SETTINGS.rateLimitFlagKey.default;
const EXCHANGE = 'outbox-demo';
const QUEUE = 'outbox-demo-events';
const TENANTS = ['acme', 'globex', 'initech'] as const;
/** The tenant the demo pauses and resumes. */
const PAUSED = 'globex';
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

const enqueued = new Map<string, string>(); // message id -> tenant
const received = new Map<string, string>();
/** This run's message ids in the order they first arrived. */
const arrivals: string[] = [];
/** The relay's log, one entry per line, with when it was read. */
const relayLog: { msg: string; at: number }[] = [];
let orderNo = 1000;

/** One enqueued event: its message id and tenant. */
interface Enqueued {
  messageId: string;
  tenant: string;
}

/** Enqueues one wave of events in a single transaction, as an application would. */
async function enqueueWave(pool: pg.Pool, types: string[]): Promise<Enqueued[]> {
  const messages: OutboxMessage[] = TENANTS.flatMap((tenant) =>
    types.map((type) => ({
      tenantId: tenant,
      exchange: EXCHANGE,
      routingKey: `${tenant}.${type}`,
      type,
      payload: {
        orderId: `${tenant}-${++orderNo}`,
        amount: Math.round(Math.random() * 10_000) / 100,
      },
    })),
  );
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // The business write would go here, in the same transaction.
    const rows = await enqueue(client, messages, { schema: SCHEMA });
    await client.query('COMMIT');
    const wave = rows.map((row, i) => ({
      messageId: row.messageId,
      tenant: messages[i]?.tenantId ?? '?',
    }));
    for (const { messageId, tenant } of wave) enqueued.set(messageId, tenant);
    console.log(`enqueued ${rows.length} messages (${types.join(', ')} for ${TENANTS.join(', ')})`);
    return wave;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/**
 * Polls `condition` every 50 ms until it holds. Fails at once if the relay
 * died, and after `timeoutMs` with what it waited for and how far it got.
 * A condition may also throw to fail the demo straight away.
 */
async function waitUntil(
  relay: RunningProcess,
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; progress?: () => string } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (!relay.running()) {
      const { exitCode, signalCode } = relay.child;
      throw new Error(
        `the relay exited early (code ${exitCode ?? signalCode}) while waiting for ${what}; see its output above`,
      );
    }
    if (Date.now() > deadline) {
      const progress = options.progress ? ` (${options.progress()})` : '';
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${progress}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until every message enqueued so far has arrived. */
function waitForAll(relay: RunningProcess): Promise<void> {
  return waitUntil(
    relay,
    'every enqueued message to arrive',
    () => [...enqueued.keys()].every((id) => received.has(id)),
    { progress: () => `${received.size} of ${enqueued.size} messages arrived` },
  );
}

/**
 * A flags file in LaunchDarkly's file data source format. The publish flag
 * serves `true` to every tenant (the fallthrough) except those listed, which
 * are individually targeted (context kind `tenant`) with `false`: paused. The
 * rate-limit flag is defined too, serving 0 (unlimited) to everyone: the relay
 * evaluates it for every tenant, and a missing flag would be logged as an SDK
 * error at each evaluation.
 */
function flagsFileJson(paused: readonly string[], version: number): string {
  const common = {
    version,
    on: true,
    offVariation: 0,
    fallthrough: { variation: 0 },
    targets: [],
    rules: [],
    prerequisites: [],
    salt: 'outbox-demo',
  };
  const publish = {
    ...common,
    key: PUBLISH_FLAG,
    variations: [true, false],
    contextTargets:
      paused.length > 0 ? [{ contextKind: 'tenant', values: [...paused], variation: 1 }] : [],
  };
  const rateLimit = { ...common, key: RATE_LIMIT_FLAG, variations: [0], contextTargets: [] };
  return `${JSON.stringify({ flags: { [PUBLISH_FLAG]: publish, [RATE_LIMIT_FLAG]: rateLimit } }, null, 2)}\n`;
}

let flagsVersion = 1;

/**
 * Replaces the flags file atomically, as editors and Kubernetes ConfigMap
 * updates do: a new file renamed over the old one. (A watch on the file itself
 * would miss this; the relay watches the directory and the file's identity.)
 */
function replaceFlagsFile(path: string, paused: readonly string[]): void {
  const next = `${path}.tmp`;
  flagsVersion += 1;
  writeFileSync(next, flagsFileJson(paused, flagsVersion));
  console.log(
    `  writing ${basename(next)} (paused: ${paused.length > 0 ? paused.join(', ') : 'nobody'}) and renaming it over ${basename(path)}`,
  );
  renameSync(next, path);
}

/**
 * Prints the relay's JSON log lines compactly and remembers each `msg`, so
 * the demo can wait on what the relay says it did.
 */
function followRelayLog(relay: RunningProcess): void {
  relay.onLine((line) => {
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = undefined;
    }
    if (typeof entry !== 'object' || entry === null || !('msg' in entry)) {
      console.log(`  [relay] ${line}`);
      return;
    }
    const {
      time: _time,
      service: _service,
      level,
      msg,
      ...fields
    } = entry as Record<string, unknown>;
    relayLog.push({ msg: String(msg), at: performance.now() });
    const detail = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
    console.log(`  [relay] ${String(level)}: ${String(msg)}${detail}`);
  });
}

/** How many times the relay has logged `msg` so far. */
function logged(msg: string): number {
  return relayLog.filter((entry) => entry.msg === msg).length;
}

/** Pending (unpublished, not dead) rows of `tenant` in the outbox table. */
async function pendingInOutbox(pool: pg.Pool, tenant: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `select count(*)::int as n from "${SCHEMA}".messages
     where tenant_id = $1 and published_at is null and dead_at is null`,
    [tenant],
  );
  return rows[0]?.n ?? 0;
}

/** Runs `outbox-relay <args>` to completion and returns its stdout. */
async function outboxRelay(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { code, stdout, stderr } = await runProcess(process.execPath, [CLI, ...args], {
    env,
    timeoutMs: 20_000,
  });
  if (code !== 0) {
    throw new Error(`outbox-relay ${args.join(' ')} failed (exit code ${code}): ${stderr.trim()}`);
  }
  return stdout;
}

/** What the demo reads from `outbox-relay tenants --json`. */
interface TenantsReport {
  tenants: { tenantId: string; pending: number; paused: boolean }[];
}

async function connectOrExplain<T>(
  what: string,
  connect: () => Promise<T>,
  hint: string,
): Promise<T> {
  try {
    return await connect();
  } catch (error) {
    const reason = error instanceof Error ? error.message || error.constructor.name : String(error);
    throw new Error(`${what} is not reachable (${reason}).\n  ${hint}`);
  }
}

async function main(): Promise<void> {
  const pool = new pg.Pool({
    connectionString: DATABASE_URL,
    max: 2,
    connectionTimeoutMillis: 5000,
  });
  let connection: ChannelModel | undefined;
  let channel: Channel | undefined;
  let relay: RunningProcess | undefined;
  let flagsDir: string | undefined;
  try {
    await connectOrExplain(
      `PostgreSQL at ${redactUrl(DATABASE_URL)}`,
      () => pool.query('select 1'),
      'Start it (e.g. `pg_ctlcluster <version> main start`) or set DATABASE_URL.',
    );
    connection = await connectOrExplain(
      `RabbitMQ at ${redactUrl(AMQP_URL)}`,
      () => amqp.connect(AMQP_URL, { timeout: 5000 }),
      'Start it (e.g. `rabbitmq-server -detached`) or set AMQP_URL.',
    );
    channel = await connection.createChannel();

    // The topology must exist before the relay publishes: it publishes with
    // `mandatory`, so an unroutable message would count as a failed attempt.
    await channel.assertExchange(EXCHANGE, 'topic', { durable: true });
    await channel.assertQueue(QUEUE, { durable: true });
    await channel.bindQueue(QUEUE, EXCHANGE, '#');
    await channel.consume(
      QUEUE,
      (msg) => {
        if (!msg) return;
        const id = String(msg.properties.messageId);
        const tenant = String(msg.properties.headers?.['x-tenant-id'] ?? '?');
        // Leftovers of an interrupted earlier run may still be pending in the outbox.
        const note = enqueued.has(id) ? '' : '  (not from this run)';
        if (enqueued.has(id) && !received.has(id)) arrivals.push(id);
        if (enqueued.has(id)) received.set(id, tenant);
        const line = [
          tenant.padEnd(8),
          String(msg.properties.type).padEnd(16),
          msg.fields.routingKey.padEnd(24),
          id,
        ];
        console.log(`  <- ${line.join(' ')} ${msg.content.toString()}${note}`);
      },
      { noAck: true },
    );

    // The per-tenant kill switch reads a flags file here; in production it
    // would more likely be LaunchDarkly itself (LAUNCHDARKLY_SDK_KEY).
    flagsDir = mkdtempSync(join(tmpdir(), 'outbox-demo-flags-'));
    const flagsPath = join(flagsDir, 'flags.json');
    writeFileSync(flagsPath, flagsFileJson([], flagsVersion));
    console.log(`flags file ${flagsPath}: nobody paused`);

    // One environment for the relay and the CLI, so `outbox-relay tenants`
    // evaluates the same flags as the relay.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL,
      AMQP_URL,
      OUTBOX_SCHEMA: SCHEMA,
      OUTBOX_FLAGS_FILE: flagsPath,
      OUTBOX_PUBLISH_FLAG: PUBLISH_FLAG,
      OUTBOX_RATE_LIMIT_FLAG: RATE_LIMIT_FLAG,
      // A flags file and an SDK key exclude each other: the demo uses the file.
      LAUNCHDARKLY_SDK_KEY: '',
      LOG_LEVEL: 'warn',
    };

    await enqueueWave(pool, ['order.created', 'order.paid']);

    // The relay runs as its own process, exactly as it would be deployed. It
    // logs at info so the demo can see (and show) when it reloads the flags.
    console.log('starting the relay: node dist/cli/main.js run');
    const child = startProcess(process.execPath, [CLI, 'run'], {
      env: { ...env, LOG_LEVEL: 'info' },
      stdout: 'inherit',
    });
    relay = child;
    followRelayLog(child);
    await waitForAll(child);
    console.log(`all ${enqueued.size} messages arrived`);

    // --- Pause globex --------------------------------------------------------
    console.log(
      `\npausing ${PAUSED} with the flags file (replace by rename, as a ConfigMap update)`,
    );
    const changesBefore = logged('tenant flags changed');
    const pausedAt = performance.now();
    replaceFlagsFile(flagsPath, [PAUSED]);
    // Wait for the relay's own word that it has the new flags. (`outbox-relay
    // tenants` cannot tell: it reads the file itself, and lists only tenants
    // with pending events, and globex has none yet.)
    await waitUntil(
      child,
      'the relay to reload the flags file',
      () => logged('tenant flags changed') > changesBefore,
      { timeoutMs: 10_000 },
    );
    const noticed = relayLog.filter((entry) => entry.msg === 'tenant flags changed').at(-1);
    console.log(
      `the relay noticed the change after ${Math.round((noticed?.at ?? 0) - pausedAt)} ms`,
    );

    // A wave for every tenant while globex is paused: the relay notices the
    // new rows by itself; acme's and initech's go out, globex's stay put.
    const wave = await enqueueWave(pool, ['order.packed', 'order.shipped', 'order.delivered']);
    const held = wave.filter((m) => m.tenant === PAUSED).map((m) => m.messageId);
    const flowing = wave.filter((m) => m.tenant !== PAUSED).map((m) => m.messageId);
    const heldArrived = () => held.filter((id) => received.has(id)).length;
    await waitUntil(
      child,
      `the other tenants' events to arrive while ${PAUSED} is paused`,
      () => {
        if (heldArrived() > 0) {
          throw new Error(`${heldArrived()} of ${PAUSED}'s events arrived although it is paused`);
        }
        return flowing.every((id) => received.has(id));
      },
      {
        progress: () =>
          `${flowing.filter((id) => received.has(id)).length} of ${flowing.length} arrived`,
      },
    );
    const others = TENANTS.filter((t) => t !== PAUSED).join(' and ');
    console.log(`${others}: all ${flowing.length} events of this wave arrived`);

    // The operator's view: the same report ops would look at during an incident.
    await waitUntil(
      child,
      `outbox-relay tenants to report ${PAUSED} paused with ${held.length} pending events`,
      async () => {
        const report = JSON.parse(await outboxRelay(['tenants', '--json'], env)) as TenantsReport;
        const row = report.tenants.find((t) => t.tenantId === PAUSED);
        return row?.paused === true && row.pending >= held.length;
      },
      { timeoutMs: 20_000 },
    );
    if (heldArrived() > 0) {
      throw new Error(`${heldArrived()} of ${PAUSED}'s events arrived although it is paused`);
    }
    console.log(
      `${PAUSED}: ${await pendingInOutbox(pool, PAUSED)} events held in the outbox (${SCHEMA}.messages)`,
    );
    console.log('$ outbox-relay tenants');
    const table = await outboxRelay(['tenants'], env);
    for (const line of table.trimEnd().split('\n')) console.log(`  ${line}`);

    // --- Resume globex -------------------------------------------------------
    // No wait for the reload here: the held events arriving is the proof.
    console.log(`\nresuming ${PAUSED} with the flags file`);
    const resumedAt = performance.now();
    replaceFlagsFile(flagsPath, []);
    await waitUntil(
      child,
      `${PAUSED}'s held events to arrive after the resume`,
      () => held.every((id) => received.has(id)),
      { progress: () => `${heldArrived()} of ${held.length} arrived` },
    );
    console.log(
      `${PAUSED}: all ${held.length} held events arrived, ${Math.round(performance.now() - resumedAt)} ms after the flags file changed`,
    );
    // One ordered stream per tenant (no ordering key): they must come in enqueue order.
    const heldSet = new Set(held);
    const order = arrivals.filter((id) => heldSet.has(id));
    if (order.join() !== held.join()) {
      throw new Error(`${PAUSED}'s held events arrived out of order: ${order.join(', ')}`);
    }
    console.log(`${PAUSED}: in the order they were enqueued`);
    await waitForAll(child);
    console.log(`all ${enqueued.size} messages arrived`);

    console.log('\nstopping the relay with SIGTERM');
    // Killed after 20 s if it hangs: the exit code is then null, and the demo fails.
    const code = await relay.stop(20_000);
    if (code !== 0)
      throw new Error(`the relay did not exit cleanly after SIGTERM (exit code: ${code})`);
    console.log('relay exited with code 0');

    console.log('\nsummary        enqueued  received');
    for (const tenant of TENANTS) {
      const count = (m: Map<string, string>) => [...m.values()].filter((t) => t === tenant).length;
      console.log(
        `  ${tenant.padEnd(12)} ${String(count(enqueued)).padStart(8)}  ${String(count(received)).padStart(8)}`,
      );
    }
    console.log(
      `  ${'total'.padEnd(12)} ${String(enqueued.size).padStart(8)}  ${String(received.size).padStart(8)}`,
    );
  } finally {
    // Never leave a relay behind, even when the demo failed half-way.
    if (relay?.running()) relay.child.kill('SIGKILL');
    await channel?.deleteQueue(QUEUE).catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
    if (flagsDir) rmSync(flagsDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
