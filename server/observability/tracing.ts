import { context, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { SpanProcessor } from "@opentelemetry/sdk-trace-base";

/** What tracing needs from the configuration. */
export interface TracingOptions {
  /** OTLP/HTTP traces URL; tracing is off when it is empty and no `processors` are given. */
  otlpEndpoint: string | undefined;
  /** Fraction of new traces kept; a caller's sampled flag is honoured either way. */
  sampleRatio: number;
  /** `service.instance.id` of the spans (the replica id). */
  instanceId: string;
  /** Extra span processors (tests pass one with an in-memory exporter). */
  processors?: SpanProcessor[];
}

/** A tracer provider of this gateway. */
export interface Tracing {
  tracer: Tracer;
  /** Exports the spans ended so far (tests call this before they look). */
  flush(): Promise<void>;
  /** Flushes and stops exporting; called last when the gateway stops. */
  shutdown(): Promise<void>;
}

let contextManagerInstalled = false;

/**
 * Builds the tracer provider, or nothing when tracing is not configured: then the trace SDK is
 * not even loaded, and nothing of it is in the call path — the RPC interceptor does not create spans and the database is not
 * wrapped (docs/operations.md, "Tracing"). The provider is the gateway's own, not registered as
 * the process-global one, so two gateways in one test process do not share exporters; what is
 * global is the AsyncLocalStorage context manager, which only carries the active span across
 * awaits (so a query knows the call it runs for).
 */
export async function createTracing(options: TracingOptions): Promise<Tracing | undefined> {
  if (!options.otlpEndpoint && !options.processors?.length) return undefined;
  // Loaded only now: a gateway without tracing never loads the trace SDK or the exporter.
  const [{ AsyncLocalStorageContextManager }, { OTLPTraceExporter }, { resourceFromAttributes }, sdk] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
  ]);
  const { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } = sdk;
  const processors = [...(options.processors ?? [])];
  if (options.otlpEndpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: options.otlpEndpoint })));
  if (!contextManagerInstalled) {
    // Returns false when another context manager is already installed; that one serves too.
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    contextManagerInstalled = true;
  }
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "agentgateway", "service.instance.id": options.instanceId }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio) }),
    spanProcessors: processors,
  });
  return {
    tracer: provider.getTracer("agentgateway"),
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** Reads W3C `traceparent`/`tracestate`; a malformed header is ignored (the call starts a new trace). */
export const traceContextPropagator = new W3CTraceContextPropagator();

/** Extracts the caller's trace context from request headers. */
export function extractTraceContext(headers: Headers) {
  return traceContextPropagator.extract(context.active(), headers, {
    keys: (carrier) => [...carrier.keys()],
    get: (carrier, key) => carrier.get(key) ?? undefined,
  });
}
