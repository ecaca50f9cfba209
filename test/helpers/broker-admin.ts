/**
 * Asks the broker itself about connections: the management API when it
 * answers, otherwise `rabbitmqctl` on this machine.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Connection names with their open channel counts, as the broker reports them. */
export async function channelsPerConnection(amqpUrl: string): Promise<Map<string, number>> {
  const url = new URL(amqpUrl);
  const fromApi = await viaManagementApi(url).catch(() => undefined);
  if (fromApi) return fromApi;
  const { stdout } = await run(
    'rabbitmqctl',
    ['-q', 'list_connections', 'client_properties', 'channels', '--formatter', 'json'],
    {
      timeout: 30_000,
    },
  );
  // rabbitmqctl prints client_properties as [key, type, value] triples or, in
  // some versions, as an object.
  const rows = JSON.parse(stdout) as {
    client_properties: [string, string, unknown][] | Record<string, unknown>;
    channels: number;
  }[];
  const result = new Map<string, number>();
  for (const row of rows) {
    const properties = row.client_properties;
    const name = Array.isArray(properties)
      ? properties.find(([key]) => key === 'connection_name')?.[2]
      : properties.connection_name;
    if (typeof name === 'string') result.set(name, row.channels);
  }
  return result;
}

async function viaManagementApi(url: URL): Promise<Map<string, number> | undefined> {
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
  const result = new Map<string, number>();
  for (const row of rows) {
    const name = row.client_properties?.connection_name;
    if (name) result.set(name, row.channels);
  }
  return result;
}
