import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { ERROR_DOMAIN, Reason } from "../client/reasons.js";
import { TrustError } from "../client/transport.js";
import { CliError, EXIT, explain, reasonSentence } from "./errors.js";

const ctx = { command: "agents get", server: "https://gw.example.com", subject: "web-1" };

describe("exit codes", () => {
  it("are distinct for each failure class", () => {
    const values = Object.values(EXIT);
    expect(new Set(values).size).toBe(values.length);
  });

  it.each([
    [Code.InvalidArgument, EXIT.USAGE],
    [Code.OutOfRange, EXIT.USAGE],
    [Code.NotFound, EXIT.NOT_FOUND],
    [Code.PermissionDenied, EXIT.PERMISSION_DENIED],
    [Code.Unauthenticated, EXIT.UNAUTHENTICATED],
    [Code.Unavailable, EXIT.UNAVAILABLE],
    [Code.DeadlineExceeded, EXIT.UNAVAILABLE],
    [Code.ResourceExhausted, EXIT.UNAVAILABLE],
    [Code.FailedPrecondition, EXIT.CONFLICT],
    [Code.AlreadyExists, EXIT.CONFLICT],
    [Code.Aborted, EXIT.CONFLICT],
    [Code.Internal, EXIT.FAILURE],
    [Code.Unknown, EXIT.FAILURE],
    [Code.Unimplemented, EXIT.FAILURE],
  ])("maps Connect code %s to exit %s", (code, exit) => {
    expect(explain(new ConnectError("boom", code), ctx).exitCode).toBe(exit);
  });
});

describe("sentences", () => {
  it("say what to do, naming the command, the server and the role", () => {
    expect(explain(new ConnectError("no agent web-1", Code.NotFound), { ...ctx, notFoundHint: "list agents with `agwctl agents list`" }).message).toBe(
      "no agent web-1: list agents with `agwctl agents list`",
    );
    expect(explain(new ConnectError("key not valid", Code.Unauthenticated), ctx).message).toMatch(
      /^https:\/\/gw\.example\.com does not accept the API key \(key not valid\): run `agwctl login`/,
    );
    expect(explain(new ConnectError("X needs role editor", Code.PermissionDenied), { ...ctx, role: "editor" }).message).toMatch(
      /ask an admin for a key with role editor/,
    );
    expect(explain(new ConnectError("ttl: must be at least 60s", Code.InvalidArgument), ctx).message).toMatch(
      /Check the flags with `agwctl agents get --help`/,
    );
    expect(explain(new ConnectError("connect ECONNREFUSED", Code.Unavailable), ctx).message).toMatch(/^cannot reach https:\/\/gw\.example\.com/);
    expect(explain(new ConnectError("x", Code.Unimplemented), ctx).message).toMatch(/upgrade the gateway/);
  });

  it("has a sentence for every ErrorInfo reason, and uses it over the code's", () => {
    for (const reason of Object.values(Reason)) expect(reasonSentence(reason, "web-1").length).toBeGreaterThan(20);
    const err = new ConnectError("agent awaiting approval", Code.FailedPrecondition, undefined, [
      { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: Reason.AWAITING_APPROVAL, domain: ERROR_DOMAIN }) },
    ]);
    const out = explain(err, ctx);
    expect(out).toMatchObject({ exitCode: EXIT.CONFLICT, code: "FAILED_PRECONDITION", reason: "AWAITING_APPROVAL" });
    expect(out.message).toBe(
      "agent awaiting approval: agent web-1 is awaiting approval: compare its code (`agwctl agents get web-1`), then run `agwctl agents approve web-1 --code CODE`",
    );
  });

  it("reports an untrusted gateway, however the broken connection surfaced", () => {
    const pin = Object.assign(new Error("gateway certificate SHA-256 ab matches no pinned fingerprint"), { code: "ERR_AGW_CERT_PIN_MISMATCH" });
    for (const code of [Code.Unavailable, Code.Canceled, Code.Unknown]) {
      expect(explain(new ConnectError("stream closed", code), { ...ctx, connectionError: pin }).exitCode).toBe(EXIT.UNTRUSTED);
    }
    const expired = new ConnectError(
      "certificate has expired",
      Code.Unavailable,
      undefined,
      undefined,
      Object.assign(new Error("certificate has expired"), { code: "CERT_HAS_EXPIRED" }),
    );
    expect(explain(expired, ctx)).toMatchObject({ exitCode: EXIT.UNTRUSTED });
    expect(explain(expired, ctx).message).toMatch(/not trusted .*--ca-file or --ca-pin/);
  });

  it("passes CliErrors through, treats bad trust settings as usage, and anything else as a failure", () => {
    expect(explain(new CliError(EXIT.ROLLOUT_HALTED, "halted"), ctx)).toEqual({ exitCode: EXIT.ROLLOUT_HALTED, message: "halted" });
    expect(explain(new TrustError("refusing cleartext"), ctx).exitCode).toBe(EXIT.USAGE);
    expect(explain(new Error("EACCES: permission denied, open 'x'"), ctx)).toEqual({ exitCode: EXIT.FAILURE, message: "EACCES: permission denied, open 'x'" });
  });
});
