/**
 * The W3C trace context of the caller's active OpenTelemetry span, for
 * `enqueue` to store in the message headers (the relay copies headers into
 * the AMQP message, so a consumer continues the trace).
 *
 * `@opentelemetry/api` is an optional peer dependency: without it, or without
 * an active valid span, nothing is added. The API keeps its state in a
 * process-wide global, so the application's own copy of it is the one read.
 */
type OtelApi = typeof import('@opentelemetry/api');

let api: OtelApi | undefined;
try {
  api = await import('@opentelemetry/api');
} catch {
  api = undefined;
}

/** Headers naming the trace of the active span, or undefined outside a span. */
export function activeTraceHeaders(): Record<string, string> | undefined {
  if (!api) return undefined;
  const span = api.trace.getSpan(api.context.active());
  if (!span) return undefined;
  const spanContext = span.spanContext();
  if (!api.isSpanContextValid(spanContext)) return undefined;
  const flags = (spanContext.traceFlags & 0xff).toString(16).padStart(2, '0');
  const headers: Record<string, string> = {
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`,
  };
  const traceState = spanContext.traceState?.serialize();
  if (traceState) headers.tracestate = traceState;
  return headers;
}
