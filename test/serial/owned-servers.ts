/**
 * The serial tests change a server for everyone on it (a PostgreSQL restart,
 * a broker-wide memory alarm). OUTBOX_TEST_OWN_SERVERS=1 says this run owns
 * the servers of this machine, not whatever TEST_DATABASE_URL or
 * TEST_AMQP_URL points at, so before changing anything each test proves that
 * its URL reaches the local server it is about to change, and fails (never
 * skips) when it does not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describeError } from '../../src/errors.js';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** A PostgreSQL cluster on this machine, as pg_ctlcluster names it. */
export interface LocalCluster {
  version: string;
  port: number;
  dataDirectory: string;
}

function refuse(action: string, problem: string): never {
  throw new Error(
    `refusing to ${action}: ${problem}. OUTBOX_TEST_OWN_SERVERS=1 lets the serial tests change ` +
      "this machine's own servers only: unset it to leave them out, or point TEST_DATABASE_URL and " +
      'TEST_AMQP_URL at those servers.',
  );
}

/** The last value of `name` in postgresql.conf syntax (`name = value`, `#` comments), unquoted. */
function confValue(text: string, name: string): string | undefined {
  let value: string | undefined;
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_.]+)\s*=?\s*('(?:[^']|'')*'|[^\s#]+)/.exec(line);
    if (match?.[1]?.toLowerCase() !== name || match[2] === undefined) continue;
    const raw = match[2];
    value = raw.startsWith("'") ? raw.slice(1, -1).replaceAll("''", "'") : raw;
  }
  return value;
}

/** The `main` clusters under /etc/postgresql, with the port and data directory their config sets. */
function localClusters(): LocalCluster[] {
  let versions: string[];
  try {
    versions = readdirSync('/etc/postgresql');
  } catch {
    return [];
  }
  return versions.flatMap((version) => {
    const dir = join('/etc/postgresql', version, 'main');
    const conf = join(dir, 'postgresql.conf');
    if (!existsSync(conf)) return [];
    // Debian's postgresql.conf ends with include_dir = 'conf.d'; those files win.
    const confD = join(dir, 'conf.d');
    const extra = existsSync(confD)
      ? readdirSync(confD)
          .filter((file) => file.endsWith('.conf'))
          .sort()
          .map((file) => join(confD, file))
      : [];
    const text = [conf, ...extra].map((file) => readFileSync(file, 'utf8')).join('\n');
    return [
      {
        version,
        port: Number(confValue(text, 'port') ?? 5432),
        dataDirectory: confValue(text, 'data_directory') ?? `/var/lib/postgresql/${version}/main`,
      },
    ];
  });
}

/**
 * The local cluster that `databaseUrl` reaches: its host is this machine, its
 * port is the one a cluster under /etc/postgresql is configured with, and the
 * server there reports that cluster's data directory. Throws otherwise.
 */
export async function ownedPostgresCluster(databaseUrl: string): Promise<LocalCluster> {
  const action = 'restart PostgreSQL';
  const url = new URL(databaseUrl);
  const where = `${url.hostname}:${url.port || 5432}`;
  if (!LOOPBACK.has(url.hostname)) {
    refuse(action, `the test database is at ${where}, not on this machine`);
  }
  const port = Number(url.port || 5432);
  const clusters = localClusters();
  const cluster = clusters.find((candidate) => candidate.port === port);
  if (!cluster) {
    const found = clusters.map((c) => `${c.version}/main on port ${c.port}`).join(', ');
    refuse(
      action,
      `the test database is at ${where}, and no cluster under /etc/postgresql uses port ${port} (${found || 'none found'})`,
    );
  }
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  let reported: string | undefined;
  try {
    await client.connect();
    const { rows } = await client.query<{ data_directory: string }>('show data_directory');
    reported = rows[0]?.data_directory;
  } catch (error) {
    refuse(
      action,
      `cannot ask the server at ${where} for its data directory (${describeError(error)})`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  if (reported !== cluster.dataDirectory) {
    refuse(
      action,
      `the server at ${where} runs on data directory ${reported}, not ${cluster.dataDirectory} of the local cluster ${cluster.version}/main`,
    );
  }
  return cluster;
}

/** What the tests read from `rabbitmqctl status` (the node it reaches by default, on this machine). */
export interface BrokerStatus {
  listeners: { protocol: string; port: number; interface: string }[];
  vm_memory_high_watermark_setting: { relative: number } | { absolute: number | string };
}

/** `rabbitmqctl` against the node on this machine; throws with what failed. */
export function rabbitmqctl(...args: string[]): string {
  try {
    return execFileSync('rabbitmqctl', ['-q', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    throw new Error(`rabbitmqctl ${args.join(' ')} failed: ${describeError(error)}`);
  }
}

/** The local node's status. */
export function brokerStatus(): BrokerStatus {
  return JSON.parse(rabbitmqctl('status', '--formatter', 'json')) as BrokerStatus;
}

/**
 * Checks that `amqpUrl` reaches the broker `rabbitmqctl` administers on this
 * machine: a loopback host, and a port that node has an AMQP listener on.
 * Throws otherwise.
 */
export function assertOwnedBroker(amqpUrl: string): void {
  const action = 'raise a memory alarm on RabbitMQ';
  const url = new URL(amqpUrl);
  const port = Number(url.port || (url.protocol === 'amqps:' ? 5671 : 5672));
  const where = `${url.hostname}:${port}`;
  if (!LOOPBACK.has(url.hostname)) {
    refuse(action, `the test broker is at ${where}, not on this machine`);
  }
  let status: BrokerStatus;
  try {
    status = brokerStatus();
  } catch (error) {
    refuse(action, `cannot read the local node's status (${describeError(error)})`);
  }
  const amqpPorts = status.listeners
    .filter((listener) => listener.protocol.startsWith('amqp'))
    .map((listener) => listener.port);
  if (!amqpPorts.includes(port)) {
    refuse(
      action,
      `the test broker is at ${where}, but the node rabbitmqctl reaches listens for AMQP on ${amqpPorts.join(', ') || 'no port'}`,
    );
  }
}
