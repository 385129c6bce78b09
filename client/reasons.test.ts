import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { ERROR_DOMAIN, Reason, reasonOf } from "./reasons.js";

const withInfo = (reason: string, domain = ERROR_DOMAIN) =>
  new ConnectError("refused", Code.FailedPrecondition, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain } }]);

describe("reasonOf", () => {
  it("reads the gateway's ErrorInfo reason", () => {
    expect(reasonOf(withInfo("AWAITING_APPROVAL"))).toBe(Reason.AWAITING_APPROVAL);
  });
  it("ignores reasons of another domain, unknown reasons, and errors without details", () => {
    expect(reasonOf(withInfo("AWAITING_APPROVAL", "proxy.example"))).toBeUndefined();
    expect(reasonOf(withInfo("SOMETHING_NEW"))).toBeUndefined();
    expect(reasonOf(new ConnectError("awaiting approval", Code.FailedPrecondition))).toBeUndefined();
    expect(reasonOf(new Error("AWAITING_APPROVAL"))).toBeUndefined();
  });
  it("survives the wire form (details serialized and decoded again)", () => {
    const wire = ConnectError.from(withInfo("AGENT_REVOKED"));
    expect(reasonOf(wire)).toBe(Reason.AGENT_REVOKED);
  });
});
