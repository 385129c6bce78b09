import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { classify, retryHintMs } from "./errors.js";

describe("classify", () => {
  it("maps the protocol's codes to what the agent does", () => {
    expect(classify(new ConnectError("this agent is revoked", Code.PermissionDenied)).kind).toBe("revoked");
    expect(classify(new ConnectError("session has expired", Code.Unauthenticated)).kind).toBe("reauthenticate");
    expect(classify(new ConnectError("awaiting approval: an operator must approve", Code.FailedPrecondition)).kind).toBe("awaiting-approval");
    expect(classify(new ConnectError("this agent was retired", Code.FailedPrecondition)).kind).toBe("identity-unusable");
    expect(classify(new ConnectError("no agent", Code.NotFound)).kind).toBe("unknown-agent");
    expect(classify(new ConnectError("events[3].type", Code.InvalidArgument)).kind).toBe("invalid");
    expect(classify(new ConnectError("connect ECONNREFUSED", Code.Unavailable)).kind).toBe("transient");
    expect(classify(new Error("socket hang up")).kind).toBe("transient");
  });
});

describe("retryHintMs", () => {
  it("reads the retry-after header/trailer in seconds", () => {
    const err = new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" });
    expect(retryHintMs(err)).toBe(7000);
    expect(classify(err)).toEqual({ kind: "transient", message: "slow down", retryAfterMs: 7000 });
  });

  it("falls back to 'retry after N s' in the message", () => {
    expect(retryHintMs(new ConnectError("handshake rate limit exceeded: retry after 3 s", Code.ResourceExhausted))).toBe(3000);
    expect(retryHintMs(new ConnectError("retry after 1.5s", Code.ResourceExhausted))).toBe(1500);
    expect(retryHintMs(new ConnectError("no hint here", Code.ResourceExhausted))).toBeUndefined();
  });

  it("caps absurd hints at an hour", () => {
    expect(retryHintMs(new ConnectError("x", Code.ResourceExhausted, { "retry-after": "999999" }))).toBe(3_600_000);
  });
});
