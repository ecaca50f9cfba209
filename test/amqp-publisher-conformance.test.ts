/**
 * The AMQP publisher against the Publisher contract (the suite the in-memory
 * publisher passes too), on the real RabbitMQ: each test gets its own
 * connection, a topic exchange bound to a queue with a consumer, and an
 * exchange bound to nothing for unroutable messages.
 */
import { AmqpPublisher, connectionName } from '../src/broker/amqp-publisher.js';
import { silentLogger } from '../src/log/logger.js';
import { createTestBroker } from './helpers/broker.js';
import { uniqueName } from './helpers/database.js';
import { publisherConformance } from './helpers/publisher-conformance.js';

publisherConformance(
  'AmqpPublisher',
  async () => {
    const broker = await createTestBroker('conformance');
    const unroutableExchange = uniqueName('x_unrouted');
    await broker.channel.assertExchange(unroutableExchange, 'topic', { durable: false });
    const publisher = await AmqpPublisher.connect({
      url: broker.url,
      // Two lanes, so that ordering scopes are spread over channels.
      channels: 2,
      maxInFlight: 100,
      heartbeatMs: 10_000,
      confirmTimeoutMs: 15_000,
      connectTimeoutMs: 5000,
      connectionName: connectionName(),
      logger: silentLogger,
    });
    return {
      publisher,
      exchange: broker.exchange,
      unroutableExchange,
      received: () =>
        broker.received.map((m) => ({
          messageId: m.messageId,
          routingKey: m.routingKey,
          content: m.body,
          contentType: m.properties.contentType,
          type: m.properties.type,
          headers: m.properties.headers ?? {},
        })),
      async cleanup() {
        await publisher.close(1000);
        await broker.channel.deleteExchange(unroutableExchange).catch(() => undefined);
        await broker.close();
      },
    };
  },
  { unroutable: true },
);
