/**
 * A PgBouncer of the test's own in front of the test database, on a free
 * loopback port, with a configuration and auth file in a temporary directory.
 * PgBouncer refuses to run as root, so as root it runs as the `postgres` user.
 * Needs the `pgbouncer` binary (Debian: `apt-get install -y pgbouncer`); fails
 * with that advice when it is missing, never skips.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { waitFor } from './wait.js';

/** A running PgBouncer; `url` reaches the test database through it. */
export interface TestPgBouncer {
  url: string;
  /** The PgBouncer version line, e.g. `PgBouncer 1.18.0`. */
  version: string;
  stop(): Promise<void>;
}

/** Settings a test may choose. */
export interface PgBouncerOptions {
  /** `transaction` (the default) or `session`. */
  poolMode?: 'transaction' | 'session';
  /** Server connections per database and user (default 4). */
  defaultPoolSize?: number;
}

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The binary and its version line; PGBOUNCER_BIN overrides where to look. */
function findBinary(): { binary: string; version: string } {
  const fromEnv = process.env.PGBOUNCER_BIN;
  const paths = fromEnv ? [fromEnv] : CANDIDATES;
  for (const binary of paths) {
    try {
      const output = execFileSync(binary, ['--version'], { encoding: 'utf8' });
      return { binary, version: output.split('\n')[0] ?? '' };
    } catch {
      // not there: try the next one
    }
  }
  throw new Error(
    `pgbouncer is not installed (looked for ${paths.join(', ')}): install it with ` +
      '`apt-get install -y pgbouncer` (Debian/Ubuntu) or set PGBOUNCER_BIN to its path',
  );
}

/** Whether this PgBouncer knows max_prepared_statements (1.21 and later). */
function supportsPreparedStatements(version: string): boolean {
  const [, major = '0', minor = '0'] = /(\d+)\.(\d+)/.exec(version) ?? [];
  return Number(major) > 1 || (Number(major) === 1 && Number(minor) >= 21);
}

/** The uid and gid to run as: ours, or the `postgres` user's when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'pgbouncer refuses to run as root, and there is no `postgres` user to run it as',
    );
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

/** A value for pgbouncer.ini or the auth file, quoted where needed. */
function iniValue(value: string): string {
  return /^[\w.-]*$/.test(value) ? value : `'${value.replace(/'/g, "''")}'`;
}

/** Starts PgBouncer in front of `databaseUrl`; waits until a query passes through it. */
export async function startPgBouncer(
  databaseUrl: string,
  options: PgBouncerOptions = {},
): Promise<TestPgBouncer> {
  const { binary, version } = findBinary();
  const target = new URL(databaseUrl);
  const user = decodeURIComponent(target.username || 'postgres');
  const password = decodeURIComponent(target.password);
  const database = decodeURIComponent(target.pathname.slice(1) || user);
  const port = await freePort();
  const directory = await mkdtemp(join(tmpdir(), 'outbox-pgbouncer-'));
  const identity = runAs();
  const server = [
    `host=${iniValue(target.hostname)}`,
    `port=${target.port || '5432'}`,
    `dbname=${iniValue(database)}`,
    `user=${iniValue(user)}`,
    ...(password ? [`password=${iniValue(password)}`] : []),
  ].join(' ');
  // auth_type trust still wants the user in the auth file.
  await writeFile(join(directory, 'userlist.txt'), `"${user}" "${password.replace(/"/g, '""')}"\n`);
  await writeFile(
    join(directory, 'pgbouncer.ini'),
    [
      '[databases]',
      `${iniValue(database)} = ${server}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(directory, 'userlist.txt')}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${options.defaultPoolSize ?? 4}`,
      'max_client_conn = 500',
      // The most recently used server connection is handed out first (the default).
      'server_round_robin = 0',
      // node-postgres sends no extra startup parameters; postgres.js and others may.
      'ignore_startup_parameters = extra_float_digits,options',
      `pidfile = ${join(directory, 'pgbouncer.pid')}`,
      // 1.21+ can track protocol-level prepared statements across server
      // connections; off, as in older versions and most other transaction
      // poolers, so tests meet the strictest pooler.
      ...(supportsPreparedStatements(version) ? ['max_prepared_statements = 0'] : []),
    ].join('\n'),
  );
  if (identity) {
    await chown(directory, identity.uid, identity.gid);
    await chmod(directory, 0o700);
    for (const file of ['userlist.txt', 'pgbouncer.ini']) {
      await chown(join(directory, file), identity.uid, identity.gid);
    }
  }
  const child: ChildProcess = spawn(binary, [join(directory, 'pgbouncer.ini')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(identity ?? {}),
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  const url = `postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const stop = async () => {
    if (exitCode === undefined) child.kill('SIGTERM');
    await exited;
    await rm(directory, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (exitCode !== undefined) {
          throw new Error(`pgbouncer exited with ${exitCode} at start: ${stderr.trim()}`);
        }
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        client.on('error', () => undefined);
        try {
          await client.connect();
          await client.query('select 1');
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      `pgbouncer to pass a query on port ${port}`,
      15_000,
    );
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\npgbouncer's log: ${stderr.trim()}`);
  }
  return { url, version, stop };
}
