/**
 * Coalesces amqplib's socket writes. amqplib queues each published message
 * (method, header and body frames in one buffer) on its channel's stream, and
 * a multiplexer moves those buffers to the socket in one pass per event-loop
 * turn, with one `socket.write()` each: with the socket uncorked, every
 * message costs its own write system call (about a tenth of the relay's CPU
 * in a profile under load). Corking the socket for the length of that pass
 * hands the buffers to the kernel in one `writev` per high-water mark
 * instead. That mark is raised from Node's default (16 KiB on Node 20, about
 * a dozen 1 KiB messages; 64 KiB from Node 22) to 256 KiB by
 * {@link BATCHED_SOCKET_OPTIONS}, passed when the connection opens: a pass
 * then ends in a few `writev` calls (measured in docs/benchmarks.md).
 *
 * Nothing else changes: the bytes, their order and the back-pressure are
 * amqplib's own (the socket still reports full at its high-water mark, and
 * the pass stops there until 'drain'), and the socket is uncorked before the
 * pass returns, even if it throws, so no frame (a heartbeat, a close) ever
 * waits behind the cork.
 */
import type { ChannelModel } from 'amqplib';

/**
 * Socket options for `amqp.connect`: how many bytes a connection's socket
 * takes before it reports full (Node's default: 16 KiB on Node 20, 64 KiB
 * from 22). Back-pressure still works the same way, at this mark; it bounds
 * the memory queued per connection.
 */
export const BATCHED_SOCKET_OPTIONS = { writableHighWaterMark: 256 * 1024 } as const;

/** The parts of amqplib's internals this relies on (as in amqplib 2.3; test/batched-writes.test.ts checks). */
interface AmqplibMux {
  out?: { cork?: () => void; uncork?: () => void };
  _readIncoming?: () => void;
}

/**
 * Corks the socket around each pass of the connection's multiplexer. Returns
 * false (and changes nothing) if this amqplib does not have the internals it
 * expects: writes are then per message, as before.
 */
export function batchSocketWrites(model: ChannelModel): boolean {
  const mux = (model as unknown as { connection?: { muxer?: AmqplibMux } }).connection?.muxer;
  const socket = mux?.out;
  const pass = mux?._readIncoming;
  if (
    mux === undefined ||
    typeof pass !== 'function' ||
    typeof socket?.cork !== 'function' ||
    typeof socket.uncork !== 'function'
  ) {
    return false;
  }
  const cork = socket.cork.bind(socket);
  const uncork = socket.uncork.bind(socket);
  mux._readIncoming = function corkedPass(this: AmqplibMux) {
    cork();
    try {
      pass.call(this);
    } finally {
      uncork();
    }
  };
  return true;
}
