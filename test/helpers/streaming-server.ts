/**
 * A local HTTP server that speaks LaunchDarkly's streaming protocol to the
 * real SDK: on GET /all it sends a `put` with every flag, then `patch` events
 * whenever a test changes a flag.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running streaming server. */
export interface StreamingServer {
  uri: string;
  /** Replaces one flag and pushes a patch to every connected SDK. */
  patch(flag: Record<string, unknown> & { key: string }): void;
  /** Number of SDK stream connections seen. */
  connections(): number;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 with `flags` as the initial data. */
export async function startStreamingServer(
  flags: (Record<string, unknown> & { key: string })[],
): Promise<StreamingServer> {
  const current = new Map(flags.map((flag) => [flag.key, flag]));
  const streams = new Set<ServerResponse>();
  let connections = 0;
  const server: Server = createServer((request, response) => {
    if (request.method === 'GET' && request.url?.startsWith('/all')) {
      connections += 1;
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const data = { path: '/', data: { flags: Object.fromEntries(current), segments: {} } };
      response.write(`event: put\ndata: ${JSON.stringify(data)}\n\n`);
      streams.add(response);
      request.on('close', () => streams.delete(response));
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    uri: `http://127.0.0.1:${port}`,
    patch(flag) {
      current.set(flag.key, flag);
      const message = `event: patch\ndata: ${JSON.stringify({ path: `/flags/${flag.key}`, data: flag })}\n\n`;
      for (const stream of streams) stream.write(message);
    },
    connections: () => connections,
    async close() {
      for (const stream of streams) stream.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
    },
  };
}
