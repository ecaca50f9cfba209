/**
 * The W3C trace context of the caller's active OpenTelemetry span, for
 * `enqueue` to store in the message headers (the relay copies headers into
 * the AMQP message, so a consumer continues the trace).
 *
 * `@opentelemetry/api` is an optional peer dependency: without it, or without
 * an active valid span, nothing is added. The API keeps its state in a
 * process-wide global, so whichever copy of it resolves here reads the
 * application's context.
 *
 * It is looked up on the first call, not on import: a top-level await would
 * make `require('outbox-relay')` fail (ERR_REQUIRE_ASYNC_MODULE), and an
 * application that never enqueues inside a span should not pay for loading
 * it. `createRequire` finds it from this file, whichever module system loaded
 * the package, and works synchronously.
 */
import { createRequire } from 'node:module';

type OtelApi = typeof import('@opentelemetry/api');

/** The API after the first look: the module, or null when it cannot be loaded. */
let api: OtelApi | null | undefined;

function otelApi(): OtelApi | null {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
    } catch {
      api = null;
    }
  }
  return api;
}

/** Headers naming the trace of the active span, or undefined outside a span. */
export function activeTraceHeaders(): Record<string, string> | undefined {
  const otel = otelApi();
  if (!otel) return undefined;
  const span = otel.trace.getSpan(otel.context.active());
  if (!span) return undefined;
  const spanContext = span.spanContext();
  if (!otel.isSpanContextValid(spanContext)) return undefined;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
  const headers: Record<string, string> = {
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`,
  };
  const traceState = spanContext.traceState?.serialize();
  if (traceState) headers.tracestate = traceState;
  return headers;
}
