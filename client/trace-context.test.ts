import type { UnaryRequest } from "@connectrpc/connect";
import { context, ROOT_CONTEXT, trace, TraceFlags } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isTraceparent, traceContextInterceptor } from "./trace-context.js";

/** Runs the interceptor on a bare request and returns the headers it sent. */
async function sentHeaders(interceptor: ReturnType<typeof traceContextInterceptor>, preset: Record<string, string> = {}): Promise<Headers> {
  const header = new Headers(preset);
  let seen: Headers | undefined;
  await interceptor(async (req) => {
    seen = req.header;
    return {} as never;
  })({ header } as UnaryRequest);
  if (!seen) throw new Error("next was not called");
  return seen;
}

describe("traceContextInterceptor", () => {
  const manager = new AsyncLocalStorageContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(manager.enable());
  });
  afterAll(() => {
    context.disable();
  });

  it("sends nothing when no span is active and no fallback is given", async () => {
    expect((await sentHeaders(traceContextInterceptor())).has("traceparent")).toBe(false);
  });

  it("sends the active span's context, with its sampled flag and trace state", async () => {
    const span = trace.wrapSpanContext({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.SAMPLED });
    const headers = await context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
      sentHeaders(traceContextInterceptor(() => "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01")),
    );
    // The active span wins over the fallback.
    expect(headers.get("traceparent")).toBe("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    const unsampled = trace.wrapSpanContext({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", traceFlags: TraceFlags.NONE });
    const h2 = await context.with(trace.setSpan(ROOT_CONTEXT, unsampled), () => sentHeaders(traceContextInterceptor()));
    expect(h2.get("traceparent")?.endsWith("-00")).toBe(true);
  });

  it("uses a well-formed fallback (agwctl's TRACEPARENT) and ignores a malformed one", async () => {
    const good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    expect((await sentHeaders(traceContextInterceptor(() => ` ${good.toUpperCase()} `))).get("traceparent")).toBe(good);
    for (const bad of [
      "",
      "garbage",
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      `00-${"0".repeat(32)}-b7ad6b7169203331-01`,
      `${good}\r\nx-injected: 1`,
    ]) {
      expect((await sentHeaders(traceContextInterceptor(() => bad))).has("traceparent"), JSON.stringify(bad)).toBe(false);
    }
  });

  it("leaves a traceparent the caller set itself alone", async () => {
    const own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    expect(
      (
        await sentHeaders(
          traceContextInterceptor(() => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
          { traceparent: own },
        )
      ).get("traceparent"),
    ).toBe(own);
  });

  it("recognises W3C traceparent version 00 only, with non-zero ids", () => {
    expect(isTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")).toBe(true);
    expect(isTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")).toBe(false);
  });
});
