import { Code, ConnectError } from "@connectrpc/connect";

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
 * tables in docs/protocol.md ("Errors"): PERMISSION_DENIED means revoked, UNAUTHENTICATED
 * means handshake again, FAILED_PRECONDITION is "awaiting approval" or a dead registration.
 */
export function classify(err: unknown): Verdict {
  const error = asConnectError(err);
  const message = error.rawMessage;
  switch (error.code) {
    case Code.PermissionDenied:
      return { kind: "revoked", message };
    case Code.Unauthenticated:
      return { kind: "reauthenticate", message };
    case Code.FailedPrecondition:
      // The gateway's only machine-readable signal is the message (no error detail yet).
      return /awaiting approval/i.test(message) ? { kind: "awaiting-approval", message } : { kind: "identity-unusable", message };
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
      return { kind: "transient", message };
  }
}

/**
 * The server's "come back later" hint of a RESOURCE_EXHAUSTED (or UNAVAILABLE) error, in ms:
 * the `retry-after` header/trailer in seconds (gRPC clients read the trailer), else
 * "retry after N s" in the message (docs/protocol.md, "Errors").
 */
export function retryHintMs(err: unknown): number | undefined {
  const error = asConnectError(err);
  const header = error.metadata.get("retry-after");
  if (header !== null) {
    const seconds = Number(header.trim());
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 3600) * 1000;
  }
  const match = /retry after (\d+(?:\.\d+)?) ?s\b/i.exec(error.rawMessage);
  if (match?.[1]) return Math.min(Number(match[1]), 3600) * 1000;
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
