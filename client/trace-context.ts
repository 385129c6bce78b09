import type { Interceptor } from "@connectrpc/connect";
import { context, isSpanContextValid, trace, TraceFlags } from "@opentelemetry/api";

/** A W3C `traceparent` value: version 00, 32-hex trace id, 16-hex parent id, 2-hex flags. */
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

/** True when `value` is a well-formed W3C traceparent (version 00) with non-zero ids. */
export function isTraceparent(value: string): boolean {
  return TRACEPARENT.test(value);
}

/**
 * Sends W3C trace context (`traceparent`, and `tracestate` when there is one) on every call
 * made while a span is active — an application embedding the agent or calling the admin API
 * from its own traced code gets the gateway's spans in its trace. With no active span,
 * `fallback` may supply one (agwctl passes the `TRACEPARENT` environment variable, so a script
 * can tie its commands to its own trace). Only `@opentelemetry/api` is needed: it does nothing
 * until the application installs an SDK, so calls cost one lookup when no one traces.
 */
export function traceContextInterceptor(fallback?: () => string | undefined): Interceptor {
  return (next) => (req) => {
    if (!req.header.has("traceparent")) {
      const span = trace.getSpanContext(context.active());
      if (span && isSpanContextValid(span)) {
        const flags = span.traceFlags & TraceFlags.SAMPLED ? "01" : "00";
        req.header.set("traceparent", `00-${span.traceId}-${span.spanId}-${flags}`);
        const state = span.traceState?.serialize();
        if (state) req.header.set("tracestate", state);
      } else {
        const given = fallback?.()?.trim().toLowerCase();
        if (given && isTraceparent(given)) req.header.set("traceparent", given);
      }
    }
    return next(req);
  };
}
