/**
 * A TCP proxy on 127.0.0.1 in front of a service, for cutting connections
 * the way networks fail: `reset()` drops every live connection at once;
 * `blackhole()` keeps them open but silently discards every byte from then on
 * (a dead link nobody closes). New connections go through unless `refuse()`
 * was called: then they are closed at once, as by a host that is down, until
 * `accept()`.
 */

import type { AddressInfo } from 'node:net';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** A running proxy. */
export interface TcpProxy {
  port: number;
  /** Connections accepted since the start. */
  accepted(): number;
  reset(): void;
  blackhole(): void;
  /** Closes new connections at once until `accept()`. */
  refuse(): void;
  accept(): void;
  close(): Promise<void>;
}

/** Starts a proxy forwarding to `host:port`. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  let accepted = 0;
  let refusing = false;
  const server: Server = createServer((client) => {
    if (refusing) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    accepted += 1;
    const upstream = connect(port, host);
    const pair = { client, upstream, dead: false };
    pairs.add(pair);
    client.on('data', (chunk) => {
      if (!pair.dead) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.dead) client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    reset() {
      for (const pair of [...pairs]) {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      }
    },
    blackhole() {
      for (const pair of pairs) pair.dead = true;
    },
    refuse() {
      refusing = true;
    },
    accept() {
      refusing = false;
    },
    async close() {
      for (const pair of [...pairs]) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A proxy in front of the broker at `amqpUrl`, with that URL rewritten to go through it. */
export async function proxyFor(amqpUrl: string): Promise<TcpProxy & { url: string }> {
  const target = new URL(amqpUrl);
  const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
  target.host = `127.0.0.1:${proxy.port}`;
  return Object.assign(proxy, { url: target.toString() });
}
