/**
 * Trace context from the producing transaction to the consumer: `enqueue`
 * inside an OpenTelemetry span stores the span's W3C traceparent, the relay
 * copies it into the AMQP headers, and a consumer extracting it continues the
 * same trace. Uses the real OpenTelemetry SDK (an in-memory exporter).
 */
import { context, propagation, type Span, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/outbox/enqueue.js';
import { useOutboxFixture } from './helpers/fixture.js';
import { orderEvent } from './helpers/messages.js';
import { createTestRelay } from './helpers/relay.js';
import { waitFor } from './helpers/wait.js';

const fixture = useOutboxFixture('tracing', { resetEachTest: true });
const provider = new BasicTracerProvider();
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});

afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
});

describe('trace context through the outbox', () => {
  it('carries the enqueuing span’s traceparent to the consumed message, where the trace continues', async () => {
    const { db, broker } = fixture;
    const tracer = trace.getTracer('outbox-relay-test');
    let producer: Span | undefined;
    await tracer.startActiveSpan('place order', async (span) => {
      producer = span;
      const client = await db.pool.connect();
      try {
        await client.query('begin');
        await enqueue(
          client,
          [
            orderEvent(broker.exchange, 'acme', 1),
            // A traceparent the application sets itself is kept.
            orderEvent(broker.exchange, 'acme', 2, {
              headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
            }),
            // So is one set in another case, and no second one is added.
            orderEvent(broker.exchange, 'acme', 4, {
              headers: { Traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01' },
            }),
          ],
          { schema: db.schema },
        );
        await client.query('commit');
      } finally {
        client.release();
        span.end();
      }
    });
    // Outside any span: no trace header.
    await enqueue(db.pool, orderEvent(broker.exchange, 'acme', 3), { schema: db.schema });

    const relay = await createTestRelay(db, broker.url);
    try {
      await relay.relay.drain();
      await waitFor(() => broker.received.length === 4, 'four messages consumed');
    } finally {
      await relay.close();
    }

    const bySeq = new Map(
      broker.received.map((m) => [(JSON.parse(m.body.toString()) as { seq: number }).seq, m]),
    );
    const spanContext = (producer as Span).spanContext();
    const expected = `00-${spanContext.traceId}-${spanContext.spanId}-01`;
    const first = bySeq.get(1)?.properties.headers ?? {};
    expect(first.traceparent).toBe(expected);
    expect(bySeq.get(2)?.properties.headers?.traceparent).toBe(
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    );
    expect(bySeq.get(3)?.properties.headers?.traceparent).toBeUndefined();
    expect(bySeq.get(4)?.properties.headers).toMatchObject({
      Traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01',
    });
    expect(bySeq.get(4)?.properties.headers?.traceparent).toBeUndefined();

    // The consumer continues the producer's trace from the AMQP headers.
    const extracted = propagation.extract(context.active(), first);
    const consumer = tracer.startSpan('handle order', {}, extracted);
    expect(consumer.spanContext().traceId).toBe(spanContext.traceId);
    expect(consumer.spanContext().spanId).not.toBe(spanContext.spanId);
    consumer.end();
  });
});
