/**
 * A TCP proxy on 127.0.0.1 in front of a service, for cutting connections
 * the way networks fail: `reset()` drops every live connection at once;
 * `blackhole()` keeps them open but silently discards every byte from then on
 * (a dead link nobody closes). New connections go through unless `refuse()`
 * was called: then they are closed at once, as by a host that is down, until
 * `accept()`; or `hold()`: then they stay open with nothing forwarded (a
 * connect that hangs) until `accept()` lets them through.
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
  /** Keeps new connections waiting, nothing forwarded, until `accept()`. */
  hold(): void;
  /** Connections kept waiting by `hold()` right now. */
  holding(): number;
  accept(): void;
  close(): Promise<void>;
}

/** Starts a proxy forwarding to `host:port`. */
export async function startTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; dead: boolean }>();
  let accepted = 0;
  let refusing = false;
  let held: { client: Socket; chunks: Buffer[] }[] | undefined;
  const forward = (client: Socket, early: Buffer[] = []) => {
    const upstream = connect(port, host);
    for (const chunk of early) upstream.write(chunk);
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
  };
  const server: Server = createServer((client) => {
    if (refusing) {
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    accepted += 1;
    if (held) {
      const waiting = { client, chunks: [] as Buffer[] };
      held.push(waiting);
      client.on('error', () => undefined);
      client.on('data', (chunk: Buffer) => waiting.chunks.push(chunk));
      return;
    }
    forward(client);
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
    hold() {
      held ??= [];
    },
    holding: () => held?.filter(({ client }) => !client.destroyed).length ?? 0,
    accept() {
      refusing = false;
      const waiting = held ?? [];
      held = undefined;
      for (const { client, chunks } of waiting) {
        if (client.destroyed) continue;
        client.removeAllListeners('data');
        forward(client, chunks);
      }
    },
    async close() {
      for (const { client } of held ?? []) client.destroy();
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
