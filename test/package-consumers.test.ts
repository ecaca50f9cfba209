/**
 * The package as an application gets it: `npm pack` of this checkout (dist
 * as `npm run build` left it), installed with `npm install <tarball>` into a
 * scratch app, then used from a CommonJS and an ES module script on the real
 * PostgreSQL and type-checked under `module: nodenext` and `module: commonjs`.
 *
 * No network, not even npm's cache: the scratch app starts with a copy of the
 * packages the tarball and the app need (and their bin links), taken from this
 * checkout's node_modules by following package-lock.json, so `npm install
 * --offline` finds every dependency in place and only adds outbox-relay.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/database.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** What the scripts enqueue under, as a consumer's span would set it. */
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';

/** The scratch app's own dependencies: pg, OpenTelemetry, and the types a TypeScript app has. */
const APP_DEPENDENCIES = [
  'pg',
  '@opentelemetry/api',
  '@opentelemetry/context-async-hooks',
  '@types/node',
  '@types/pg',
];

interface LockEntry {
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

/** This checkout's package-lock.json: what its node_modules holds, and where. */
const LOCK = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

/**
 * The top-level node_modules folders (`node_modules/x`, `node_modules/@s/x`)
 * holding `names` and everything they need, resolved the way Node does in
 * this checkout's package-lock.json.
 */
function installedClosure(names: readonly string[]): Set<string> {
  const seen = new Set<string>();
  const visit = (from: string, name: string): void => {
    for (let dir = from; ; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/node_modules/')))) {
      const key = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      const entry = LOCK.packages[key];
      if (entry) {
        if (seen.has(key)) return;
        seen.add(key);
        const peers = Object.keys(entry.peerDependencies ?? {}).filter(
          (peer) => !entry.peerDependenciesMeta?.[peer]?.optional,
        );
        for (const dependency of [
          ...Object.keys(entry.dependencies ?? {}),
          ...Object.keys(entry.optionalDependencies ?? {}),
          ...peers,
        ]) {
          visit(key, dependency);
        }
        return;
      }
      if (!dir) return; // an optional dependency this platform did not install
    }
  };
  for (const name of names) visit('', name);
  return new Set([...seen].map((key) => key.match(/^node_modules\/(@[^/]+\/)?[^/]+/)?.[0] ?? key));
}

/** The CommonJS app: enqueues one message in a transaction, reads its row back, prints both. */
const COMMONJS_APP = `
const { Client } = require('pg');
const { enqueue } = require('outbox-relay/enqueue');
const root = require('outbox-relay');
let otel;
try { otel = require('@opentelemetry/api'); } catch {}

function inSpan(work) {
  if (!otel) return work();
  const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
  otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const span = otel.trace.wrapSpanContext({ traceId: '${TRACE_ID}', spanId: '${SPAN_ID}', traceFlags: 1 });
  return otel.context.with(otel.trace.setSpan(otel.context.active(), span), work);
}

async function main() {
  const schema = process.env.OUTBOX_SCHEMA;
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    await client.query('begin');
    const [inserted] = await inSpan(() =>
      enqueue(client, { tenantId: 'cjs-app', exchange: 'orders', routingKey: 'order.created', payload: { from: 'require' } }, { schema }),
    );
    await client.query('commit');
    const { rows } = await client.query(
      'select message_id, tenant_id, convert_from(payload, $2) as payload, headers from "' + schema + '".messages where message_id = $1',
      [inserted.messageId, 'UTF8'],
    );
    console.log(JSON.stringify({ inserted, row: rows[0], sameEnqueue: root.enqueue === enqueue, otel: Boolean(otel) }));
  } finally {
    await client.end();
  }
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

/** The ES module app: the same, through import. */
const ESM_APP = `
import { createRequire } from 'node:module';
import pg from 'pg';
import { enqueue } from 'outbox-relay/enqueue';
import * as root from 'outbox-relay';

let otel;
try { otel = await import('@opentelemetry/api'); } catch {}

async function inSpan(work) {
  if (!otel) return work();
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  otel.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const span = otel.trace.wrapSpanContext({ traceId: '${TRACE_ID}', spanId: '${SPAN_ID}', traceFlags: 1 });
  return otel.context.with(otel.trace.setSpan(otel.context.active(), span), work);
}

const schema = process.env.OUTBOX_SCHEMA;
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
try {
  await client.query('begin');
  const [inserted] = await inSpan(() =>
    enqueue(client, { tenantId: 'esm-app', exchange: 'orders', routingKey: 'order.created', payload: { from: 'import' } }, { schema }),
  );
  await client.query('commit');
  const { rows } = await client.query(
    'select message_id, tenant_id, convert_from(payload, $2) as payload, headers from "' + schema + '".messages where message_id = $1',
    [inserted.messageId, 'UTF8'],
  );
  console.log(JSON.stringify({ inserted, row: rows[0], sameEnqueue: root.enqueue === enqueue, otel: Boolean(otel) }));
} finally {
  await client.end();
}
`;

/**
 * Type-checked, not run: an application's use of both entries. The
 * `@ts-expect-error` lines fail the check if the types degrade to `any`.
 */
const TYPED_APP = `
import { enqueue, type EnqueuedMessage, type InsertedMessage, InvalidMessageError, type OutboxMessage } from 'outbox-relay/enqueue';
import { enqueue as rootEnqueue, migrateUp, Relay } from 'outbox-relay';
import pg from 'pg';

export async function placeOrder(pool: pg.Pool): Promise<InsertedMessage[]> {
  const client = await pool.connect();
  const message: OutboxMessage = { tenantId: 't1', exchange: 'orders', routingKey: 'order.created', payload: { id: 1 } };
  try {
    // @ts-expect-error tenantId is a string
    await enqueue(client, { ...message, tenantId: 1 });
    const plain: EnqueuedMessage[] = await enqueue(client, message);
    // @ts-expect-error a row id comes back only with returnIds
    console.log(plain[0]?.id);
    return await rootEnqueue(client, message, { schema: 'outbox', returnIds: true });
  } catch (error) {
    if (error instanceof InvalidMessageError) console.log(error.field.toUpperCase(), error.index + 1);
    throw error;
  } finally {
    client.release();
  }
}
export const migrate: (pool: pg.Pool, schema: string) => Promise<unknown> = migrateUp;
export const relayClass: typeof Relay = Relay;
// @ts-expect-error no such export
export { notAnExport } from 'outbox-relay/enqueue';
`;

const COMPILER_OPTIONS = {
  strict: true,
  noEmit: true,
  skipLibCheck: false,
  types: ['node'],
  esModuleInterop: true,
};

let workDir: string;
let app: string;
let appWithoutOtel: string;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('consumers');
  workDir = mkdtempSync(join(tmpdir(), 'outbox-consumers-'));
  // The tarball of this checkout as it is built; prepack (a rebuild) is not
  // run, so the other test files' dist is never rewritten under them.
  await run('npm', ['pack', '--ignore-scripts', '--pack-destination', workDir], {
    cwd: ROOT,
    timeout: 60_000,
  });
  const tarball = join(workDir, readdirSync(workDir).find((file) => file.endsWith('.tgz')) ?? '');
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };

  app = join(workDir, 'app');
  mkdirSync(app);
  const appDependencies = Object.fromEntries(
    APP_DEPENDENCIES.map((name) => [name, LOCK.packages[`node_modules/${name}`]?.version ?? '*']),
  );
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'scratch-app', private: true, dependencies: appDependencies }),
  );
  const folders = installedClosure([...Object.keys(manifest.dependencies), ...APP_DEPENDENCIES]);
  for (const folder of folders) {
    cpSync(join(ROOT, folder), join(app, folder), { recursive: true });
  }
  // Their bin links too: npm would otherwise reinstall a package whose bin is missing.
  mkdirSync(join(app, 'node_modules', '.bin'));
  for (const bin of readdirSync(join(ROOT, 'node_modules', '.bin'))) {
    const target = readlinkSync(join(ROOT, 'node_modules', '.bin', bin));
    const folder = target.match(/^\.\.\/((?:@[^/]+\/)?[^/]+)\//)?.[1];
    if (folder && folders.has(`node_modules/${folder}`)) {
      symlinkSync(target, join(app, 'node_modules', '.bin', bin));
    }
  }
  await run(
    'npm',
    ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball],
    { cwd: app, timeout: 60_000 },
  );
  writeFileSync(join(app, 'enqueue-app.cjs'), COMMONJS_APP);
  writeFileSync(join(app, 'enqueue-app.mjs'), ESM_APP);

  // The same app without @opentelemetry/api: enqueue must not need it.
  appWithoutOtel = join(workDir, 'app-without-otel');
  cpSync(app, appWithoutOtel, {
    recursive: true,
    filter: (path) => !path.includes(join('node_modules', '@opentelemetry')),
  });
}, 120_000);

afterAll(async () => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  await db?.drop();
});

/** Runs an app script on the Node running the tests: its line of JSON; stderr must be empty. */
async function runApp(dir: string, script: string): Promise<AppReport> {
  const { stdout, stderr } = await run(process.execPath, [script], {
    cwd: dir,
    env: { PATH: process.env.PATH, DATABASE_URL: db.url, OUTBOX_SCHEMA: db.schema },
    timeout: 30_000,
  });
  // Not even an ExperimentalWarning for require() of the ES module build.
  expect(stderr).toBe('');
  return JSON.parse(stdout) as AppReport;
}

interface AppReport {
  inserted: { messageId: string };
  row: { message_id: string; tenant_id: string; payload: string; headers: Record<string, string> };
  sameEnqueue: boolean;
  otel: boolean;
}

describe('the packed package in an application', () => {
  it('installs from the tarball with its dependencies and nothing from the source tree', () => {
    const installed = join(app, 'node_modules', 'outbox-relay');
    const files = readdirSync(installed);
    expect(files).toEqual(expect.arrayContaining(['dist', 'migrations', 'package.json']));
    expect(files).not.toContain('src');
    expect(readdirSync(join(installed, 'dist', 'cjs'))).toEqual(
      expect.arrayContaining(['package.json', 'index.js', 'index.d.ts', 'enqueue-entry.js']),
    );
  });

  it.each([
    ['CommonJS (require)', 'enqueue-app.cjs', 'cjs-app', 'require'],
    ['an ES module (import)', 'enqueue-app.mjs', 'esm-app', 'import'],
  ])(
    'enqueues from %s in a transaction, with the caller’s trace context, and the row reads back',
    async (_, script, tenant, from) => {
      const report = await runApp(app, script);
      expect(report.otel).toBe(true);
      expect(report.row).toMatchObject({
        message_id: report.inserted.messageId,
        tenant_id: tenant,
        payload: JSON.stringify({ from }),
      });
      expect(report.row.headers.traceparent).toBe(`00-${TRACE_ID}-${SPAN_ID}-01`);
      // One implementation behind both entries and both module systems.
      expect(report.sameEnqueue).toBe(true);
    },
  );

  it.each([
    ['CommonJS', 'enqueue-app.cjs', 'cjs-app'],
    ['an ES module', 'enqueue-app.mjs', 'esm-app'],
  ])(
    'enqueues from %s without @opentelemetry/api installed, adding no trace headers',
    async (_, script, tenant) => {
      const report = await runApp(appWithoutOtel, script);
      expect(report.otel).toBe(false);
      expect(report.row.tenant_id).toBe(tenant);
      expect(report.row.headers).not.toHaveProperty('traceparent');
    },
  );

  it('type-checks an app under module nodenext, as an ES module and as CommonJS', async () => {
    writeFileSync(join(app, 'typed-app.mts'), TYPED_APP);
    writeFileSync(join(app, 'typed-app.cts'), TYPED_APP);
    writeFileSync(
      join(app, 'tsconfig.nodenext.json'),
      JSON.stringify({
        compilerOptions: { ...COMPILER_OPTIONS, module: 'nodenext' },
        files: ['typed-app.mts', 'typed-app.cts'],
      }),
    );
    const files = await typeCheck('tsconfig.nodenext.json');
    // import reads the ES module declarations, require the CommonJS ones.
    expect(files).toContain('node_modules/outbox-relay/dist/enqueue-entry.d.ts');
    expect(files).toContain('node_modules/outbox-relay/dist/cjs/enqueue-entry.d.ts');
    expect(files).toContain('node_modules/outbox-relay/dist/index.d.ts');
    expect(files).toContain('node_modules/outbox-relay/dist/cjs/index.d.ts');
  });

  it('type-checks an app under module commonjs', async () => {
    writeFileSync(join(app, 'typed-app.ts'), TYPED_APP);
    writeFileSync(
      join(app, 'tsconfig.commonjs.json'),
      JSON.stringify({
        compilerOptions: { ...COMPILER_OPTIONS, module: 'commonjs' },
        files: ['typed-app.ts'],
      }),
    );
    const files = await typeCheck('tsconfig.commonjs.json');
    expect(files).toContain('node_modules/outbox-relay/dist/cjs/enqueue-entry.d.ts');
    expect(files).not.toContain('node_modules/outbox-relay/dist/enqueue-entry.d.ts');
  });
});

/** Runs tsc on `project` in the app; fails with its diagnostics; the files it read, app-relative. */
async function typeCheck(project: string): Promise<string[]> {
  const result = await run(process.execPath, [TSC, '-p', project, '--listFiles'], {
    cwd: app,
    timeout: 60_000,
  }).catch((error: { stdout?: string }) => {
    throw new Error(`tsc -p ${project} failed:\n${error.stdout ?? String(error)}`);
  });
  return result.stdout
    .split('\n')
    .filter((line) => line.startsWith(app))
    .map((line) => line.slice(app.length + 1));
}
