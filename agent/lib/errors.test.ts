import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ERROR_DOMAIN, Reason, type ReasonName } from "../../client/reasons.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { TENANT_SUSPENDED_RETRY_MS, classify, isRateLimited, retryHintMs } from "./errors.js";

/** An error as the gateway sends it: code, message and ErrorInfo reason. */
const refused = (message: string, code: Code, reason: ReasonName) =>
  new ConnectError(message, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: ERROR_DOMAIN } }]);

describe("classify", () => {
  it("maps the protocol's codes to what the agent does", () => {
    expect(classify(new ConnectError("this agent is revoked", Code.PermissionDenied)).kind).toBe("revoked");
    expect(classify(new ConnectError("session has expired", Code.Unauthenticated)).kind).toBe("reauthenticate");
    expect(classify(new ConnectError("no agent", Code.NotFound)).kind).toBe("unknown-agent");
    expect(classify(new ConnectError("events[3].type", Code.InvalidArgument)).kind).toBe("invalid");
    expect(classify(new ConnectError("connect ECONNREFUSED", Code.Unavailable)).kind).toBe("transient");
    expect(classify(new Error("socket hang up")).kind).toBe("transient");
  });

  it("tells the cases of FAILED_PRECONDITION apart by the ErrorInfo reason", () => {
    expect(classify(refused("awaiting approval: an operator must approve", Code.FailedPrecondition, Reason.AWAITING_APPROVAL)).kind).toBe("awaiting-approval");
    expect(classify(refused("this agent was retired", Code.FailedPrecondition, Reason.AGENT_RETIRED)).kind).toBe("identity-unusable");
    expect(classify(refused("this agent's registration was rejected", Code.FailedPrecondition, Reason.AGENT_REJECTED)).kind).toBe("identity-unusable");
    expect(classify(refused("this agent is revoked", Code.PermissionDenied, Reason.AGENT_REVOKED)).kind).toBe("revoked");
  });

  it("keeps an agent of a suspended tenant alive, retrying slowly, although the code is PERMISSION_DENIED", () => {
    expect(classify(refused("this tenant is suspended", Code.PermissionDenied, Reason.TENANT_SUSPENDED))).toEqual({
      kind: "transient",
      message: "this tenant is suspended",
      retryAfterMs: TENANT_SUSPENDED_RETRY_MS,
    });
  });

  it("never decides from the message: the reason wins, and no reason is not fatal", () => {
    // A message saying one thing with a reason saying another: the reason decides.
    expect(classify(refused("awaiting approval", Code.FailedPrecondition, Reason.AGENT_RETIRED)).kind).toBe("identity-unusable");
    expect(classify(refused("this agent was retired", Code.FailedPrecondition, Reason.AWAITING_APPROVAL)).kind).toBe("awaiting-approval");
    // Without a reason (a proxy, or a refusal this agent does not know) the agent keeps trying
    // instead of giving up its identity because of some words in a message.
    expect(classify(new ConnectError("awaiting approval", Code.FailedPrecondition)).kind).toBe("transient");
    expect(classify(new ConnectError("this agent was retired", Code.FailedPrecondition)).kind).toBe("transient");
  });
});

describe("retryHintMs", () => {
  it("reads the retry-after header/trailer in seconds", () => {
    const err = new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" });
    expect(retryHintMs(err)).toBe(7000);
    expect(classify(err)).toEqual({ kind: "transient", message: "slow down", retryAfterMs: 7000 });
  });

  it("reads google.rpc.RetryInfo when there is no header, and never the message", () => {
    const info = new ConnectError("x", Code.ResourceExhausted, undefined, [{ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(1500) } }]);
    expect(retryHintMs(info)).toBe(1500);
    expect(retryHintMs(ConnectError.from(info))).toBe(1500);
    expect(retryHintMs(new ConnectError("handshake rate limit exceeded: retry after 3 s", Code.ResourceExhausted))).toBeUndefined();
  });

  it("caps absurd hints at an hour", () => {
    expect(retryHintMs(new ConnectError("x", Code.ResourceExhausted, { "retry-after": "999999" }))).toBe(3_600_000);
  });
});

describe("isRateLimited", () => {
  it("is the RATE_LIMITED reason, not any RESOURCE_EXHAUSTED", () => {
    expect(isRateLimited(refused("rate limit exceeded", Code.ResourceExhausted, Reason.RATE_LIMITED))).toBe(true);
    expect(isRateLimited(new ConnectError("message size is larger than configured readMaxBytes", Code.ResourceExhausted))).toBe(false);
  });
});
