/**
 * The broker's own count of one client's connections and their channels, for
 * the fuzz suite's resource bounds. broker-admin.ts's channelsPerConnection
 * keys its answer by connection name, so two connections of one name (a
 * leaked one and its replacement) would read as one; this lists each.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

interface ConnectionRow {
  name: string | undefined;
  channels: number;
}

/** Channel counts of every open connection named `name`, one entry per connection. */
export async function channelsOfConnectionsNamed(amqpUrl: string, name: string): Promise<number[]> {
  const rows =
    (await viaManagementApi(new URL(amqpUrl)).catch(() => undefined)) ?? (await viaCtl());
  return rows.filter((row) => row.name === name).map((row) => row.channels);
}

async function viaCtl(): Promise<ConnectionRow[]> {
  const { stdout } = await run(
    'rabbitmqctl',
    ['-q', 'list_connections', 'client_properties', 'channels', '--formatter', 'json'],
    { timeout: 30_000 },
  );
  const rows = JSON.parse(stdout) as {
    client_properties: [string, string, unknown][];
    channels: number;
  }[];
  return rows.map((row) => {
    const name = row.client_properties.find(([key]) => key === 'connection_name')?.[2];
    return { name: typeof name === 'string' ? name : undefined, channels: row.channels };
  });
}

async function viaManagementApi(url: URL): Promise<ConnectionRow[] | undefined> {
  const base = process.env.TEST_RABBITMQ_MANAGEMENT_URL ?? `http://${url.hostname}:15672`;
  const auth = Buffer.from(
    `${decodeURIComponent(url.username || 'guest')}:${decodeURIComponent(url.password || 'guest')}`,
  ).toString('base64');
  const response = await fetch(`${base}/api/connections?columns=client_properties,channels`, {
    headers: { authorization: `Basic ${auth}` },
    signal: AbortSignal.timeout(2000),
  });
  if (!response.ok) return undefined;
  const rows = (await response.json()) as {
    client_properties?: { connection_name?: string };
    channels: number;
  }[];
  return rows.map((row) => ({
    name: row.client_properties?.connection_name,
    channels: row.channels,
  }));
}
