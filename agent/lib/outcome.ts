import type { Logger } from "pino";
import { type GoAway, GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import type { Backoff } from "./backoff.js";
import { msOf, type Session } from "./direct.js";
import { classify } from "./errors.js";
import type { SessionKeeper } from "./session-keeper.js";

/**
 * How one connection attempt ended, and what the reconnect loop does about it: the mapping of
 * GoAway reasons and error verdicts in docs/protocol.md ("ControlStream", "Errors") and
 * docs/agent.md ("Reconnecting").
 */
export type Outcome =
  | { kind: "revoked"; reason: string }
  | { kind: "unusable"; reason: string }
  | { kind: "retry"; reason: string; hintMs?: number; healthy?: boolean; immediate?: boolean; superseded?: boolean };

/** A retry outcome. */
export type Retry = Extract<Outcome, { kind: "retry" }>;

/** What a background task (heartbeats, uploads) saw that ends the whole connection. */
export interface Escalation {
  verdict: "revoked" | "reauthenticate";
  reason: string;
  /** The session token the refused call used. */
  token: string;
}

/** The session was refused: forget it (if still current) so the next attempt handshakes. */
export function refusedSession(sessions: SessionKeeper, reason: string, token: string): Retry {
  sessions.refuse(token, true);
  return { kind: "retry", reason: `session refused (${reason}): handshaking again` };
}

/** The outcome of an escalation from a background task. */
export function outcomeOfEscalation(e: Escalation, sessions: SessionKeeper): Outcome {
  return e.verdict === "revoked" ? { kind: "revoked", reason: e.reason } : refusedSession(sessions, e.reason, e.token);
}

/** The outcome of a GoAway for the stream of `session`. */
export function outcomeOfGoAway(goAway: GoAway, session: Session, healthy: boolean, sessions: SessionKeeper): Outcome {
  const hintMs = msOf(goAway.reconnectAfter, 0);
  switch (goAway.reason) {
    case GoAwayReason.REVOKED:
      return { kind: "revoked", reason: goAway.message || "revoked by an operator" };
    case GoAwayReason.SUPERSEDED:
      // This process opens one stream at a time, so a newer one belongs to someone else.
      return { kind: "retry", reason: "superseded by a newer stream of this identity (another process?)", superseded: true, healthy };
    case GoAwayReason.SESSION_ENDED:
      // Our own refresh fenced this stream (its GoAway may beat the handshake's answer here).
      if (sessions.replaced(session)) return { kind: "retry", reason: "session replaced: reconnecting with the new one", immediate: true };
      sessions.refuse(session.token, false);
      return { kind: "retry", reason: `session ended: ${goAway.message}`, healthy, hintMs };
    default:
      return { kind: "retry", reason: `GoAway ${GoAwayReason[goAway.reason] ?? goAway.reason}: ${goAway.message}`, healthy, hintMs };
  }
}

/** What the outcome of an error needs besides the error. */
export interface ErrorContext {
  sessions: SessionKeeper;
  logger: Logger;
  /** Why the transport's last connection was refused (pin mismatch, TLS), to explain failures. */
  cause?: Error | undefined;
}

/** The outcome of an error from the handshake or the stream (`session`: the stream's, if one was open). */
export function outcomeOfError(err: unknown, healthy: boolean, session: Session | undefined, ctx: ErrorContext): Outcome {
  const verdict = classify(err);
  if (ctx.cause) verdict.message = `${verdict.message} (${ctx.cause.message})`;
  switch (verdict.kind) {
    case "revoked":
      return { kind: "revoked", reason: verdict.message };
    case "identity-unusable":
      return { kind: "unusable", reason: verdict.message };
    case "awaiting-approval":
      ctx.logger.info("awaiting operator approval; will check again");
      return { kind: "retry", reason: "awaiting operator approval" };
    case "unknown-agent":
      // Not fatal: a gateway pointed at the wrong database would otherwise stop a whole fleet.
      ctx.logger.error({ error: verdict.message }, "the gateway does not know this agent (deleted, or the wrong gateway?); enroll again if it was removed");
      return { kind: "retry", reason: verdict.message };
    case "reauthenticate":
      return session ? { ...refusedSession(ctx.sessions, verdict.message, session.token), healthy } : { kind: "retry", reason: verdict.message, healthy };
    case "transient":
      return { kind: "retry", reason: verdict.message, healthy, ...(verdict.retryAfterMs !== undefined ? { hintMs: verdict.retryAfterMs } : {}) };
    default:
      return { kind: "retry", reason: verdict.message, healthy };
  }
}

/**
 * The wait before the next attempt. After a healthy connection a GoAway's (already
 * jittered) reconnect_after is used as is; otherwise the failure counts and the jittered
 * backoff applies, with any server hint as its floor.
 */
export function delayFor(outcome: Retry, backoff: Backoff): number {
  if (outcome.immediate) return 0;
  if (outcome.superseded) return backoff.next(backoff.options.maxMs);
  if (outcome.healthy) {
    backoff.reset();
    if (outcome.hintMs !== undefined) return outcome.hintMs;
  }
  return backoff.next(outcome.hintMs ?? 0);
}
