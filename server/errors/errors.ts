import type { ReasonName } from "../../client/reasons.js";

/**
 * Domain errors. Services throw these; `toConnectError` (server/errors/connect-errors.ts) is the
 * one place that maps them to Connect codes. Messages are safe to show to the caller: they
 * never contain secrets.
 */
export abstract class DomainError extends Error {
  /** How retries should be paced, for rate limits. */
  retryAfterMs?: number;
  /**
   * A stable machine-readable reason (UPPER_SNAKE_CASE), sent as a google.rpc.ErrorInfo detail,
   * so clients in any language can tell e.g. "awaiting approval" from "rejected" without
   * parsing the message. The list is client/reasons.ts, documented in docs/protocol.md, "Errors".
   */
  reason?: ReasonName;

  constructor(message: string, reason?: ReasonName) {
    super(message);
    if (reason) this.reason = reason;
  }
}

/** The caller's credential (token, session, API key, challenge, signature) is not acceptable. */
export class UnauthenticatedError extends DomainError {
  override name = "UnauthenticatedError";
}

/** The caller is known but not allowed: wrong role, revoked identity, pinned name mismatch. */
export class PermissionDeniedError extends DomainError {
  override name = "PermissionDeniedError";
}

/** The object does not exist, or belongs to another tenant (indistinguishable on purpose). */
export class NotFoundError extends DomainError {
  override name = "NotFoundError";
}

/** The object exists already (e.g. a key bound to a live agent). */
export class AlreadyExistsError extends DomainError {
  override name = "AlreadyExistsError";
}

/** The object is in a state that does not allow the operation (e.g. awaiting approval). */
export class FailedPreconditionError extends DomainError {
  override name = "FailedPreconditionError";
}

/** The request is well-formed but its values do not make sense together. */
export class InvalidInputError extends DomainError {
  override name = "InvalidInputError";
}

/** Too many requests; `retryAfterMs` says when to come back. */
export class RateLimitedError extends DomainError {
  override name = "RateLimitedError";
  /** Which limit refused (a fixed name such as `register_per_source`), for the refusal metric. */
  readonly limit: string;
  constructor(message: string, retryAfterMs: number, limit = "unnamed") {
    super(message, "RATE_LIMITED");
    this.limit = limit;
    this.retryAfterMs = retryAfterMs;
  }
}
