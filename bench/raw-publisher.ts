/**
 * The broker's own limit on this machine: amqplib publishing the same
 * persistent 1 KiB messages with confirms over one connection and a sliding
 * window, no database involved.
 */
import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { EXCHANGE, PAYLOAD_BYTES } from './harness.js';

/** The same body the outbox rows carry (see insertBacklog). */
export function benchPayload(seq: number, tenants: number): Buffer {
  const body = { seq, tenant: `tenant-${seq % tenants}`, data: 'x'.repeat(PAYLOAD_BYTES - 60) };
  return Buffer.from(JSON.stringify(body));
}

/**
 * Publishes `count` messages with at most `window` unconfirmed, spread over
 * `channels` confirm channels; resolves when all are confirmed.
 */
export async function rawPublish(
  connection: ChannelModel,
  routingKey: string,
  count: number,
  options: { channels: number; window: number; tenants: number },
): Promise<void> {
  const channels: ConfirmChannel[] = [];
  for (let i = 0; i < options.channels; i++) {
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => undefined);
    channels.push(channel);
  }
  const perChannel = Math.ceil(options.window / options.channels);
  await Promise.all(
    channels.map(async (channel, lane) => {
      let inFlight = 0;
      let wake: (() => void) | undefined;
      let failure: unknown;
      const settled = () => {
        inFlight -= 1;
        wake?.();
      };
      for (let seq = lane; seq < count; seq += options.channels) {
        while (inFlight >= perChannel) await new Promise<void>((resolve) => (wake = resolve));
        if (failure) throw failure;
        inFlight += 1;
        const tenant = `tenant-${seq % options.tenants}`;
        const writable = channel.publish(
          EXCHANGE,
          routingKey,
          benchPayload(seq, options.tenants),
          {
            persistent: true,
            mandatory: true,
            messageId: randomUUID(),
            contentType: 'application/json',
            type: 'bench.event',
            timestamp: Math.floor(Date.now() / 1000),
            headers: { 'x-tenant-id': tenant },
          },
          (error: unknown) => {
            if (error) failure = error;
            settled();
          },
        );
        if (!writable) await new Promise((resolve) => channel.once('drain', resolve));
      }
      while (inFlight > 0) await new Promise<void>((resolve) => (wake = resolve));
      if (failure) throw failure;
      await channel.close();
    }),
  );
}
