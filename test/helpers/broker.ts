/**
 * An exchange and a queue of its own for each test file, and a consumer that
 * collects what arrives.
 */
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { inject } from 'vitest';
import { uniqueName } from './database.js';

/** A message as a consumer saw it. */
export interface Received {
  messageId: string;
  tenantId: string;
  routingKey: string;
  body: Buffer;
  properties: ConsumeMessage['properties'];
}

/** A durable topic exchange bound (`#`) to a queue, with a consumer collecting into `received`. */
export interface TestBroker {
  url: string;
  exchange: string;
  queue: string;
  received: Received[];
  /** Distinct message ids received so far (of `tenants` only, when given). */
  distinctIds(tenants?: readonly string[]): Set<string>;
  connection: ChannelModel;
  channel: Channel;
  close(): Promise<void>;
}

/** Declares the topology for `prefix` and starts consuming. */
export async function createTestBroker(prefix: string): Promise<TestBroker> {
  const url = inject('amqpUrl');
  const exchange = uniqueName(`x_${prefix}`);
  const queue = uniqueName(`q_${prefix}`);
  const connection = await amqp.connect(url);
  connection.on('error', () => undefined);
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertQueue(queue, { durable: true });
  await channel.bindQueue(queue, exchange, '#');
  const received: Received[] = [];
  await channel.consume(
    queue,
    (message) => {
      if (!message) return;
      received.push({
        messageId: String(message.properties.messageId),
        tenantId: String(message.properties.headers?.['x-tenant-id']),
        routingKey: message.fields.routingKey,
        body: message.content,
        properties: message.properties,
      });
    },
    { noAck: true },
  );
  return {
    url,
    exchange,
    queue,
    received,
    distinctIds: (tenants) =>
      new Set(
        received.filter((m) => !tenants || tenants.includes(m.tenantId)).map((m) => m.messageId),
      ),
    connection,
    channel,
    async close() {
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteExchange(exchange).catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
