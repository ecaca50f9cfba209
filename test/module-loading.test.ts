/**
 * What each entry loads, seen from a fresh Node process that imports or
 * requires the built package by name (dist/, as `npm run build` left it).
 *
 * A package counts as loaded when a file under its node_modules folder is in
 * `require.cache` (every CommonJS module, whether required or imported) or
 * was resolved by the module loader, as a resolve hook logs it: a synchronous
 * `module.registerHooks` hook where Node has one (22.15+, 24), which sees
 * require() too, else a `module.register` hook, which sees only what import
 * resolves (so on Node 20 the ES modules under a require() go unseen; the
 * relay's libraries are all CommonJS and show in require.cache). The root
 * entry is the control: it loads amqplib and pino, so the probe demonstrably
 * sees what it looks for.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');

/** The relay's libraries, which an application that only enqueues must not load. */
const RELAY_LIBRARIES = [
  'amqplib',
  'pino',
  'pino-pretty',
  'prom-client',
  '@launchdarkly/node-server-sdk',
];

/** Logs every URL the module loader resolves, one a line, to $RESOLVED_LOG. */
const REGISTER_HOOK = `
import { appendFileSync } from 'node:fs';
import * as module from 'node:module';
const log = (url) => appendFileSync(process.env.RESOLVED_LOG, url + '\\n');
if (module.registerHooks) {
  module.registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      log(result.url);
      return result;
    },
  });
} else {
  module.register(
    'data:text/javascript,' +
      encodeURIComponent(
        'import { appendFileSync } from "node:fs";' +
          'export async function resolve(specifier, context, nextResolve) {' +
          '  const result = await nextResolve(specifier, context);' +
          '  appendFileSync(process.env.RESOLVED_LOG, result.url + "\\\\n");' +
          '  return result;' +
          '}',
      ),
  );
}
`;

/**
 * Loads $ENTRY with require() or import() as $HOW says, runs $THEN (a few
 * steps named below), and prints the files in require.cache.
 */
const PROBE = `
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const entry = process.env.HOW === 'require' ? require(process.env.ENTRY) : await import(process.env.ENTRY);
const steps = {
  'pretty-logger': () => entry.createLogger({ level: 'info', format: 'pretty', destination: { write() {} } }),
  'json-logger': () => entry.createLogger({ level: 'info', format: 'json', destination: { write() {} } }),
  // Any executor will do: the trace context is read before the INSERT is sent.
  enqueue: () =>
    entry
      .enqueue({ query: async () => ({ rows: [] }) }, { tenantId: 't', exchange: '', routingKey: 'k', payload: 1 })
      .catch(() => undefined),
};
for (const step of (process.env.THEN || '').split(',').filter(Boolean)) await steps[step]();
console.log(JSON.stringify(Object.keys(require.cache)));
`;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'outbox-module-loading-'));
  // An app folder where the name outbox-relay resolves to this checkout.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'outbox-relay'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  writeFileSync(join(dir, 'register.mjs'), REGISTER_HOOK);
  writeFileSync(join(dir, 'probe.mjs'), PROBE);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The packages (by node_modules folder name) a fresh process loaded. */
async function packagesLoaded(
  entry: string,
  how: 'require' | 'import',
  then: string[] = [],
): Promise<Set<string>> {
  const log = join(dir, `resolved-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(log, '');
  const { stdout } = await run(process.execPath, ['--import', './register.mjs', 'probe.mjs'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      ENTRY: entry,
      HOW: how,
      THEN: then.join(','),
      RESOLVED_LOG: log,
    },
    timeout: 30_000,
  });
  const files = [
    ...(JSON.parse(stdout) as string[]),
    ...readFileSync(log, 'utf8').split('\n').filter(Boolean),
  ];
  const packages = new Set<string>();
  for (const file of files) {
    const name = file.match(/.*node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1];
    if (name) packages.add(name);
  }
  return packages;
}

describe('what an application loads', () => {
  it.each(['require', 'import'] as const)(
    "outbox-relay/enqueue through %s loads enqueue's needs and none of the relay's libraries",
    async (how) => {
      const loaded = await packagesLoaded('outbox-relay/enqueue', how);
      // kysely too: enqueue loads it only when handed a Kysely executor. (The
      // root entry's tests below show the probe does see what loads.)
      for (const library of [...RELAY_LIBRARIES, '@opentelemetry/api', 'kysely']) {
        expect(loaded, library).not.toContain(library);
      }
    },
  );

  it.each(['require', 'import'] as const)(
    'the root entry through %s loads the relay (amqplib, pino) but not pino-pretty',
    async (how) => {
      const loaded = await packagesLoaded('outbox-relay', how);
      expect(loaded).toContain('amqplib');
      expect(loaded).toContain('pino');
      expect(loaded).not.toContain('pino-pretty');
    },
  );

  it('pino-pretty loads when a pretty logger is made, and only then', async () => {
    expect(await packagesLoaded('outbox-relay', 'import', ['json-logger'])).not.toContain(
      'pino-pretty',
    );
    expect(await packagesLoaded('outbox-relay', 'import', ['pretty-logger'])).toContain(
      'pino-pretty',
    );
  });

  it.each(['require', 'import'] as const)(
    '@opentelemetry/api is looked up on the first enqueue through %s, not on load',
    async (how) => {
      expect(await packagesLoaded('outbox-relay/enqueue', how, ['enqueue'])).toContain(
        '@opentelemetry/api',
      );
    },
  );
});
