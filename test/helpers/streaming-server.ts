/**
 * A local HTTP server that speaks LaunchDarkly's streaming protocol to the
 * real SDK: on GET /all it sends a `put` with every flag and segment, then
 * `patch` events whenever a test changes a flag or a segment.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Item = Record<string, unknown> & { key: string };

/** A running streaming server. */
export interface StreamingServer {
  uri: string;
  port: number;
  /** Replaces one flag and pushes a patch to every connected SDK. */
  patch(flag: Item): void;
  /** Replaces one segment and pushes a patch to every connected SDK. */
  patchSegment(segment: Item): void;
  /** Number of SDK stream connections seen. */
  connections(): number;
  close(): Promise<void>;
}

/** Options of {@link startStreamingServer}. */
export interface StreamingServerOptions {
  segments?: Item[];
  /** Listen on this port (to come back where SDKs already point); default: any free port. */
  port?: number;
}

/** Starts the server on 127.0.0.1 with `flags` (and `segments`) as the initial data. */
export async function startStreamingServer(
  flags: Item[],
  options: StreamingServerOptions = {},
): Promise<StreamingServer> {
  const current = new Map(flags.map((flag) => [flag.key, flag]));
  const segments = new Map((options.segments ?? []).map((segment) => [segment.key, segment]));
  const streams = new Set<ServerResponse>();
  let connections = 0;
  const server: Server = createServer((request, response) => {
    if (request.method === 'GET' && request.url?.startsWith('/all')) {
      connections += 1;
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const data = {
        path: '/',
        data: { flags: Object.fromEntries(current), segments: Object.fromEntries(segments) },
      };
      response.write(`event: put\ndata: ${JSON.stringify(data)}\n\n`);
      streams.add(response);
      request.on('close', () => streams.delete(response));
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  const push = (path: string, item: Item) => {
    const message = `event: patch\ndata: ${JSON.stringify({ path, data: item })}\n\n`;
    for (const stream of streams) stream.write(message);
  };
  return {
    uri: `http://127.0.0.1:${port}`,
    port,
    patch(flag) {
      current.set(flag.key, flag);
      push(`/flags/${flag.key}`, flag);
    },
    patchSegment(segment) {
      segments.set(segment.key, segment);
      push(`/segments/${segment.key}`, segment);
    },
    connections: () => connections,
    async close() {
      for (const stream of streams) stream.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
