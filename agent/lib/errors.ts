import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Reason, reasonOf } from "../../client/reasons.js";
import { RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/**
 * Exit codes of `agw-agent`. The systemd unit lists the "do not restart" ones in
 * RestartPreventExitStatus, so a supervisor never restarts an agent into a refusal loop.
 * Documented in docs/agent.md, "Exit codes".
 */
export const EXIT = {
  /** Clean stop (SIGTERM/SIGINT), or a command that succeeded. */
  OK: 0,
  /** Unexpected failure; safe to restart. */
  FAILURE: 1,
  /** Bad flags or arguments. */
  USAGE: 2,
  /** The gateway could not be reached or kept refusing for a transient reason; retry later. */
  TEMPFAIL: 75,
  /** The identity is revoked (or the state dir says so): do not restart, do not reconnect. */
  REVOKED: 78,
  /** The identity can no longer be used (registration rejected, agent retired): enroll again. */
  IDENTITY_UNUSABLE: 79,
} as const;

/** What the agent should do about a failed call. */
export type Verdict =
  /** The identity is revoked: stop for good. */
  | { kind: "revoked"; message: string }
  /** The session is not (or no longer) valid: handshake again. */
  | { kind: "reauthenticate"; message: string }
  /** Registered but not approved yet: keep waiting with backoff. */
  | { kind: "awaiting-approval"; message: string }
  /** The gateway does not know this agent id with this key (deleted, or the wrong gateway). */
  | { kind: "unknown-agent"; message: string }
  /** Rejected or retired: the identity is useless, enroll again. */
  | { kind: "identity-unusable"; message: string }
  /** Transient (network, overload, server bug): retry with backoff, at least `retryAfterMs`. */
  | { kind: "transient"; message: string; retryAfterMs?: number }
  /** The request itself is wrong (validation): retrying the same bytes cannot help. */
  | { kind: "invalid"; message: string };

/** The Connect error behind any thrown value (network errors become UNAVAILABLE/UNKNOWN). */
export function asConnectError(err: unknown): ConnectError {
  return ConnectError.from(err);
}

/**
 * Classifies an error from a post-handshake RPC or a handshake step, following the error
 * tables in docs/protocol.md ("Errors"). Where one code covers several cases the gateway's
 * ErrorInfo reason decides (never the message, which is for humans): AWAITING_APPROVAL waits,
 * AGENT_REJECTED / AGENT_RETIRED make the identity unusable, TENANT_SUSPENDED retries slowly
 * (the provider may resume the tenant). Otherwise PERMISSION_DENIED means revoked,
 * UNAUTHENTICATED means handshake again.
 */
export function classify(err: unknown): Verdict {
  const error = asConnectError(err);
  const message = error.rawMessage;
  switch (reasonOf(error)) {
    case Reason.AGENT_REVOKED:
      return { kind: "revoked", message };
    case Reason.AWAITING_APPROVAL:
      return { kind: "awaiting-approval", message };
    case Reason.AGENT_REJECTED:
    case Reason.AGENT_RETIRED:
      return { kind: "identity-unusable", message };
    // mTLS: the connection's certificate is missing, expired or not this agent's; the
    // certificate keeper gets a new one (agent/lib/cert-keeper.ts) and the call is retried.
    case Reason.CLIENT_CERTIFICATE_REQUIRED:
    case Reason.CERTIFICATE_MISMATCH:
      return { kind: "transient", message };
    case Reason.TENANT_SUSPENDED:
      // The identity is fine; the provider may resume the tenant. Come back slowly.
      return { kind: "transient", message, retryAfterMs: TENANT_SUSPENDED_RETRY_MS };
    default:
      break;
  }
  switch (error.code) {
    case Code.PermissionDenied:
      return { kind: "revoked", message };
    case Code.Unauthenticated:
      return { kind: "reauthenticate", message };
    case Code.NotFound:
      return { kind: "unknown-agent", message };
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return { kind: "invalid", message };
    case Code.ResourceExhausted: {
      const hint = retryHintMs(error);
      return hint === undefined ? { kind: "transient", message } : { kind: "transient", message, retryAfterMs: hint };
    }
    default:
      // Including FAILED_PRECONDITION without a reason we know: nothing says the identity is
      // dead, and stopping a fleet for good on an unrecognised refusal is worse than retrying.
      return { kind: "transient", message };
  }
}

/** How long an agent of a suspended tenant waits before it tries again. */
export const TENANT_SUSPENDED_RETRY_MS = 60_000;

/** Whether the gateway refused the call as a rate limit (as opposed to a message over its size limit). */
export function isRateLimited(err: unknown): boolean {
  return reasonOf(asConnectError(err)) === Reason.RATE_LIMITED;
}

/** Longest server hint honoured: a bogus one must not park the agent for days. */
const MAX_HINT_MS = 3_600_000;

/**
 * The server's "come back later" hint of a RESOURCE_EXHAUSTED (or UNAVAILABLE) error, in ms:
 * the `retry-after` header/trailer in seconds (gRPC clients read the trailer), else the
 * `google.rpc.RetryInfo` detail (docs/protocol.md, "Errors").
 */
export function retryHintMs(err: unknown): number | undefined {
  const error = asConnectError(err);
  const header = error.metadata.get("retry-after");
  if (header !== null) {
    const seconds = Number(header.trim());
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_HINT_MS);
  }
  for (const info of error.findDetails(RetryInfoSchema)) {
    if (info.retryDelay) {
      const ms = durationMs(info.retryDelay);
      if (Number.isFinite(ms) && ms >= 0) return Math.min(ms, MAX_HINT_MS);
    }
  }
  return undefined;
}

/** An error that ends a command with a given exit code and a message for the operator. */
export class ExitError extends Error {
  override name = "ExitError";
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}
