import { randomBytes } from "node:crypto";
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { type Context, context, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import type { Logger } from "pino";
import { DomainError, RateLimitedError } from "../errors/errors.js";
import { type CallLogContext, runInCall } from "./log-context.js";
import { metrics } from "./metrics.js";
import { extractTraceContext } from "./tracing.js";

/** Header a caller may send to name its request (echoed back); otherwise the gateway makes one. */
export const REQUEST_ID_HEADER = "x-request-id";
const REQUEST_ID = /^[A-Za-z0-9._:-]{8,64}$/;

/**
 * Request ids are unique, not secret: a random per-process prefix and a counter (16 hex
 * characters), so making one costs no entropy on the hot path.
 */
const REQUEST_ID_PREFIX = randomBytes(4).toString("hex");
let requestCounter = 0;
function nextRequestId(): string {
  requestCounter = (requestCounter + 1) % 0x1_0000_0000;
  return REQUEST_ID_PREFIX + requestCounter.toString(16).padStart(8, "0");
}

/** The caller's request id when it is well-formed, else a new one. */
export function requestIdFor(offered: string | null | undefined): string {
  return offered && REQUEST_ID.test(offered) ? offered : nextRequestId();
}

/** gRPC status names (rpc.status_code), indexed by the numeric code Connect shares with gRPC. */
const STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** Connect has no code for success; gRPC's is 0. */
const OK = 0;

/** Server-side faults per the RPC conventions; a client's mistake (NOT_FOUND, …) does not mark a span as failed. */
const SERVER_ERRORS = new Set<number>([Code.Unknown, Code.DeadlineExceeded, Code.Unimplemented, Code.Internal, Code.Unavailable, Code.DataLoss]);

/** Domain outcomes read off the RPC that decides them, so no handler carries metric code. */
const OUTCOMES: Record<string, (ok: boolean, reason: string) => void> = {
  "agentgateway.v1.AgentGatewayService/Register": (ok, reason) => metrics.registrations.add(1, { outcome: ok ? "success" : "failure", reason }),
  // A handshake ends at Complete; one refused at Begin ends there.
  "agentgateway.v1.AgentGatewayService/BeginAuthHandshake": (ok, reason) => {
    if (!ok) metrics.handshakes.add(1, { outcome: "failure", reason });
  },
  "agentgateway.v1.AgentGatewayService/CompleteAuthHandshake": (ok, reason) => metrics.handshakes.add(1, { outcome: ok ? "success" : "failure", reason }),
  "agentgateway.admin.v1.AgentService/RevokeAgent": revoked("agent"),
  "agentgateway.admin.v1.ApiKeyService/RevokeApiKey": revoked("api_key"),
  "agentgateway.admin.v1.EnrollmentTokenService/RevokeEnrollmentToken": revoked("enrollment_token"),
  "agentgateway.admin.v1.ReleaseKeyService/RevokeReleaseKey": revoked("release_key"),
};

function revoked(object: string) {
  return (ok: boolean) => {
    if (ok) metrics.revocations.add(1, { object });
  };
}

/**
 * Outermost interceptor: for every RPC, the request id and log context (so each line a call
 * writes carries its request id, tenant, agent and trace), the `rpc.server.call.duration`
 * histogram by method and status, the outcome counters (handshakes, registrations,
 * revocations, rate-limit refusals) and — only when `tracer` is given — a SERVER span that
 * continues the caller's W3C trace context. A server stream is measured until it ends, and
 * every step of it runs inside the call's context. At debug level each call ends with one
 * access line (status and duration; never the request).
 */
export function telemetryInterceptor(tracer: Tracer | undefined, logger: Logger): Interceptor {
  return (next) => async (req) => {
    const started = performance.now();
    const service = req.service.typeName;
    const rpc = `${service}/${req.method.name}`;
    const requestId = requestIdFor(req.header.get(REQUEST_ID_HEADER));
    const call: CallLogContext = { requestId, rpc, contextValues: req.contextValues };
    let span: Span | undefined;
    let spanContext: Context | undefined;
    if (tracer) {
      const parent = extractTraceContext(req.header);
      span = tracer.startSpan(
        rpc,
        {
          kind: SpanKind.SERVER,
          attributes: { "rpc.system": "connect_rpc", "rpc.service": service, "rpc.method": req.method.name, "rpc.request_id": requestId },
        },
        parent,
      );
      spanContext = trace.setSpan(parent, span);
      if (span.isRecording()) {
        call.traceId = span.spanContext().traceId;
        call.spanId = span.spanContext().spanId;
      }
    }
    const inCall = <T>(fn: () => T): T => runInCall(call, spanContext ? () => context.with(spanContext, fn) : fn);
    let finished = false;
    const finish = (err: unknown) => {
      if (finished) return;
      finished = true;
      const { code, status } = recordCallEnd(logger, call, { service, method: req.method.name, started }, err);
      if (span) {
        span.setAttribute("rpc.grpc.status_code", code);
        span.setAttribute("rpc.status_code", status);
        if (SERVER_ERRORS.has(code)) {
          span.setAttribute("error.type", status);
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        span.end();
      }
    };
    let res: UnaryResponse | StreamResponse;
    try {
      res = await inCall(() => next(req));
    } catch (err) {
      if (err instanceof ConnectError) err.metadata.set(REQUEST_ID_HEADER, requestId);
      finish(err);
      throw err;
    }
    res.header.set(REQUEST_ID_HEADER, requestId);
    if (!res.stream) {
      finish(undefined);
      return res;
    }
    const messages = res.message[Symbol.asyncIterator]();
    return {
      ...res,
      message: (async function* () {
        let failure: unknown;
        try {
          for (;;) {
            const step = await inCall(() => messages.next());
            if (step.done) return;
            yield step.value;
          }
        } catch (err) {
          failure = err;
          throw err;
        } finally {
          // Ended by the client (cancel) or by the gateway: the stream's run is over either way.
          if (failure === undefined) await inCall(() => messages.return?.());
          finish(failure);
        }
      })(),
    } as StreamResponse;
  };
}

/**
 * What every call records when it ends, whichever transport served it: the duration histogram
 * by method and status, the rate-limit and outcome counters, and at debug level one access
 * line. Returns the status it recorded.
 */
export function recordCallEnd(
  logger: Logger,
  call: CallLogContext,
  what: { service: string; method: string; started: number },
  err: unknown,
): { code: number; status: string } {
  const code: number = err === undefined ? OK : ConnectError.from(err).code;
  const status = STATUS_NAMES[code] ?? "UNKNOWN";
  const seconds = (performance.now() - what.started) / 1000;
  if (logger.isLevelEnabled("debug")) runInCall(call, () => logger.debug({ status, durationMs: Math.round(seconds * 1000) }, "rpc finished"));
  metrics.rpcDuration.record(seconds, {
    "rpc.system": "connect_rpc",
    "rpc.service": what.service,
    "rpc.method": what.method,
    "rpc.status_code": status,
  });
  const cause = err instanceof ConnectError ? err.cause : err;
  if (cause instanceof RateLimitedError) metrics.rateLimitRefusals.add(1, { limit: cause.limit });
  OUTCOMES[`${what.service}/${what.method}`]?.(code === OK, err === undefined ? "" : reasonOf(cause, status));
  return { code, status };
}

/** The ErrorInfo reason of a domain error (a fixed word from client/reasons.ts), else the status name. */
function reasonOf(cause: unknown, status: string): string {
  return cause instanceof DomainError && cause.reason ? cause.reason : status;
}
