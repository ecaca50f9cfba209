/**
 * Asks the broker itself about connections: the management API when it
 * answers, otherwise `rabbitmqctl` on this machine.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One open connection as the broker reports it. */
export interface BrokerConnection {
  name: string | undefined;
  channels: number;
}

/** Every open connection, one entry each (two of one name stay two). */
export async function brokerConnections(amqpUrl: string): Promise<BrokerConnection[]> {
  return (await viaManagementApi(new URL(amqpUrl)).catch(() => undefined)) ?? viaCtl();
}

/** Connection names with their open channel counts, as the broker reports them. */
export async function channelsPerConnection(amqpUrl: string): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const { name, channels } of await brokerConnections(amqpUrl)) {
    if (name !== undefined) result.set(name, channels);
  }
  return result;
}

/** Channel counts of every open connection named `name`, one entry per connection. */
export async function channelsOfConnectionsNamed(amqpUrl: string, name: string): Promise<number[]> {
  return (await brokerConnections(amqpUrl))
    .filter((connection) => connection.name === name)
    .map((connection) => connection.channels);
}

async function viaCtl(): Promise<BrokerConnection[]> {
  const { stdout } = await run(
    'rabbitmqctl',
    ['-q', 'list_connections', 'client_properties', 'channels', '--formatter', 'json'],
    { timeout: 30_000 },
  );
  // rabbitmqctl prints client_properties as [key, type, value] triples or, in
  // some versions, as an object.
  const rows = JSON.parse(stdout) as {
    client_properties: [string, string, unknown][] | Record<string, unknown>;
    channels: number;
  }[];
  return rows.map((row) => {
    const properties = row.client_properties;
    const name = Array.isArray(properties)
      ? properties.find(([key]) => key === 'connection_name')?.[2]
      : properties.connection_name;
    return { name: typeof name === 'string' ? name : undefined, channels: row.channels };
  });
}

async function viaManagementApi(url: URL): Promise<BrokerConnection[] | undefined> {
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
