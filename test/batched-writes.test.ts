import { getDefaultHighWaterMark } from 'node:stream';
import type { ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCHED_SOCKET_OPTIONS, batchSocketWrites } from '../src/broker/batched-writes.js';
import { createTestBroker, type TestBroker } from './helpers/broker.js';
import { waitFor } from './helpers/wait.js';

/** A stand-in for amqplib's multiplexer that records what the socket saw. */
function fakeMux(pass: () => void) {
  const events: string[] = [];
  const mux = {
    out: { cork: () => events.push('cork'), uncork: () => events.push('uncork') },
    _readIncoming() {
      events.push('pass');
      pass();
    },
  };
  return { model: { connection: { muxer: mux } } as unknown as ChannelModel, mux, events };
}

describe('batched socket writes', () => {
  it('corks the socket for each multiplexer pass and uncorks it before the pass returns', () => {
    const { model, mux, events } = fakeMux(() => undefined);
    expect(batchSocketWrites(model)).toBe(true);
    mux._readIncoming();
    mux._readIncoming();
    expect(events).toEqual(['cork', 'pass', 'uncork', 'cork', 'pass', 'uncork']);
  });

  it('uncorks the socket even when a pass throws', () => {
    const { model, mux, events } = fakeMux(() => {
      throw new Error('write after end');
    });
    batchSocketWrites(model);
    expect(() => mux._readIncoming()).toThrow('write after end');
    expect(events).toEqual(['cork', 'pass', 'uncork']);
  });

  it('changes nothing on an amqplib without the internals it expects', () => {
    const model = { connection: { muxer: { out: {} } } } as unknown as ChannelModel;
    expect(batchSocketWrites(model)).toBe(false);
    expect(batchSocketWrites({} as ChannelModel)).toBe(false);
  });

  describe('with the installed amqplib', () => {
    let broker: TestBroker;
    beforeAll(async () => {
      broker = await createTestBroker('batched_writes');
    });
    afterAll(async () => {
      await broker.close();
    });

    /** Publishes 200 messages of 1 KiB at once; the socket's write calls and high-water mark. */
    async function publishBurst(
      socketOptions: object,
    ): Promise<{ calls: number; writev: number; highWaterMark: number }> {
      const amqp = await import('amqplib');
      const connection = await amqp.default.connect(broker.url, socketOptions);
      try {
        expect(batchSocketWrites(connection)).toBe(true);
        const socket = (connection as unknown as { connection: { stream: SocketInternals } })
          .connection.stream;
        const calls = { write: 0, writev: 0 };
        const write = socket._write.bind(socket);
        const writev = socket._writev.bind(socket);
        socket._write = (...args) => {
          calls.write += 1;
          return write(...args);
        };
        socket._writev = (...args) => {
          calls.writev += 1;
          return writev(...args);
        };
        const channel = await connection.createConfirmChannel();
        const first = broker.received.length;
        const ids = Array.from({ length: 200 }, (_, i) => `batched-${first + i}`);
        for (const id of ids) {
          channel.publish(broker.exchange, 'batched', Buffer.alloc(1024, 1), {
            messageId: id,
            headers: { 'x-tenant-id': 'batched' },
          });
        }
        await channel.waitForConfirms();
        await waitFor(() => broker.received.length >= first + ids.length, 'all messages to arrive');
        expect(broker.received.slice(first).map((m) => m.messageId)).toEqual(ids);
        await channel.close();
        return {
          calls: calls.write + calls.writev,
          writev: calls.writev,
          highWaterMark: socket.writableHighWaterMark,
        };
      } finally {
        await connection.close();
      }
    }

    it('sends many messages per system call, all of them, in publish order', async () => {
      const burst = await publishBurst({});
      expect(burst.writev).toBeGreaterThan(0);
      // One call per message without batching; a 16 KiB pass (Node 20's default
      // mark; 64 KiB from Node 22) holds about a dozen.
      expect(burst.highWaterMark).toBe(getDefaultHighWaterMark(false));
      expect(burst.calls).toBeLessThan(200 / 4);
    });

    it('with BATCHED_SOCKET_OPTIONS, a burst of 200 KiB goes out in a few calls', async () => {
      const burst = await publishBurst(BATCHED_SOCKET_OPTIONS);
      expect(burst.highWaterMark).toBe(256 * 1024);
      expect(burst.writev).toBeGreaterThan(0);
      expect(burst.calls).toBeLessThan(200 / 20);
    });
  });
});

/** The net.Socket methods the test counts. */
interface SocketInternals {
  _write: (...args: unknown[]) => void;
  _writev: (...args: unknown[]) => void;
  readonly writableHighWaterMark: number;
}
