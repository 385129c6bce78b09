/**
 * How agwctl fails: one exit-code table (documented in docs/cli.md, "Exit codes") and one
 * function that turns whatever a command threw into that code and a sentence saying what to do.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { TrustError } from "../client/transport.js";
import { Reason, type ReasonName, reasonOf } from "../client/reasons.js";

/** Exit codes; each failure class a script may want to tell apart has its own. */
export const EXIT = {
  OK: 0,
  /** Anything not below: a gateway bug, an unexpected local error. */
  FAILURE: 1,
  /** Bad command line, or the gateway rejected the request as invalid. */
  USAGE: 2,
  /** The agent, token, key or rollout does not exist (or belongs to another tenant). */
  NOT_FOUND: 3,
  /** The key is valid but its role may not do this. */
  PERMISSION_DENIED: 4,
  /** No key, or the gateway does not accept it (unknown, revoked). */
  UNAUTHENTICATED: 5,
  /** The gateway cannot be reached, timed out or rate-limits us: retry later. */
  UNAVAILABLE: 6,
  /** The object's state does not allow this (already exists, wrong state, code mismatch). */
  CONFLICT: 7,
  /** `rollouts watch`: the rollout halted. */
  ROLLOUT_HALTED: 8,
  /** `rollouts watch`: the rollout was cancelled. */
  ROLLOUT_CANCELLED: 9,
  /** `audit verify`: the chain is broken. */
  AUDIT_BROKEN: 10,
  /** The gateway's TLS certificate is not trusted (CA, host name, pin). */
  UNTRUSTED: 11,
  /** Interrupted (Ctrl-C). */
  INTERRUPTED: 130,
} as const;

/** One of the exit codes. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure with its exit code and the sentence for the operator. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** The Connect code ("NOT_FOUND") when the gateway answered with an error. */
    readonly code?: string,
    /** The gateway's ErrorInfo reason, if any. */
    readonly reason?: string,
  ) {
    super(message);
  }
}

/** A usage error (exit 2). */
export function usage(message: string): CliError {
  return new CliError(EXIT.USAGE, message);
}

/** What the failing command was doing, to name things in the sentence. */
export interface ErrorContext {
  /** "agents approve". */
  command: string;
  /** The gateway URL, if one was resolved. */
  server?: string;
  /** A hint for NOT_FOUND, e.g. "list agents with `agwctl agents list`". */
  notFoundHint?: string;
  /** The first positional argument (usually an ID), to name it. */
  subject?: string;
  /** The role the command's RPCs need ("editor"), from their `access` option. */
  role?: string;
  /** Why the last TLS connection was refused, from the transport (pin mismatch). */
  connectionError?: Error;
}

/** What each reason means for an operator, and what to do. */
const REASON_SENTENCES: Record<ReasonName, (subject: string) => string> = {
  [Reason.AWAITING_APPROVAL]: (s) =>
    `agent ${s} is awaiting approval: compare its code (\`agwctl agents get ${s}\`), then run \`agwctl agents approve ${s} --code CODE\``,
  [Reason.AGENT_REJECTED]: (s) => `agent ${s} was rejected: it must enroll again with a new token (\`agwctl tokens create\`)`,
  [Reason.AGENT_RETIRED]: (s) => `agent ${s} is retired: it must enroll again with a new token (\`agwctl tokens create\`)`,
  [Reason.AGENT_REVOKED]: (s) => `agent ${s} is revoked: run \`agwctl agents unrevoke ${s} --note TEXT\` only if its key is trusted again`,
  [Reason.KEY_ALREADY_BOUND]: () => "the identity key already belongs to a live agent: retire that agent first, or enroll with a new key",
  [Reason.TOKEN_EXPIRED]: () => "the enrollment token has expired: create a new one with `agwctl tokens create`",
  [Reason.TOKEN_USED]: () => "the enrollment token has no uses left: create a new one with `agwctl tokens create --uses N`",
  [Reason.TOKEN_REVOKED]: () => "the enrollment token was revoked: create a new one with `agwctl tokens create`",
  [Reason.TOKEN_NAME_MISMATCH]: () => "the enrollment token pins another agent name: create a token with the right `--name`",
  [Reason.RATE_LIMITED]: () => "the gateway is rate-limiting these requests: wait and retry",
  [Reason.INVALID_TRANSITION]: (s) => `agent ${s} is not in a state that allows this; nothing was changed: see its state with \`agwctl agents get ${s}\``,
  // Agent-facing only (mTLS); an operator sees them in an agent's log, not from agwctl.
  [Reason.CLIENT_CERTIFICATE_REQUIRED]: () => "the gateway requires an agent client certificate (AGW_AGENT_AUTH=mtls) for this call",
  [Reason.CERTIFICATE_MISMATCH]: () => "the client certificate belongs to another agent than the session",
  [Reason.TENANT_SUSPENDED]: () => "this tenant is suspended by the provider of the gateway: nothing can be done with its keys until the provider resumes it",
  [Reason.SYSTEM_KEY_NOT_ALLOWED]: () => "this is the provider's system key: it only manages tenants (`agwctl tenants`); log in with an admin key of the tenant for everything else",
  [Reason.SYSTEM_KEY_REQUIRED]: () => "managing tenants needs the provider's system key (printed on the gateway's first start, or AGW_BOOTSTRAP_SYSTEM_KEY), not a tenant's key",
};

/** The sentence for a reason (exported for the test that every reason has one). */
export function reasonSentence(reason: ReasonName, subject: string): string {
  return REASON_SENTENCES[reason](subject);
}

const TLS_CODES =
  /^(ERR_AGW_CERT_PIN_MISMATCH|ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET_ISSUER_CERT|VERIFY_LEAF_SIGNATURE).*|CERT_.*)$/;

/** The TLS trust failure in an error's cause chain, if any. */
function trustFailure(err: unknown, connectionError: Error | undefined): Error | undefined {
  if (connectionError) return connectionError;
  let cause: unknown = err;
  for (let depth = 0; cause instanceof Error && depth < 5; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string" && TLS_CODES.test(code)) return cause;
    cause = cause.cause;
  }
  return undefined;
}

/** Turns anything a command threw into an exit code and a sentence; never includes secrets. */
export function explain(err: unknown, context: ErrorContext): { exitCode: ExitCode; message: string; code?: string; reason?: string } {
  if (err instanceof CliError)
    return { exitCode: err.exitCode, message: err.message, ...(err.code ? { code: err.code } : {}), ...(err.reason ? { reason: err.reason } : {}) };
  if (err instanceof TrustError) return { exitCode: EXIT.USAGE, message: err.message };
  if (!(err instanceof ConnectError)) {
    const untrusted = trustFailure(err, context.connectionError);
    if (untrusted) return untrustedResult(untrusted, context);
    return { exitCode: EXIT.FAILURE, message: err instanceof Error ? err.message : String(err) };
  }
  // A connection we refused (pin mismatch, bad certificate) surfaces as UNAVAILABLE, CANCELED
  // or UNKNOWN depending on when it broke; the trust failure is the real answer in every case.
  const untrusted = trustFailure(err, context.connectionError);
  if (untrusted) return untrustedResult(untrusted, context);
  const code = Code[err.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  const reason = reasonOf(err);
  const subject = context.subject ?? "";
  const server = context.server ?? "the gateway";
  const said = err.rawMessage;
  const result = (exitCode: ExitCode, message: string) => ({ exitCode, message, code, ...(reason ? { reason } : {}) });
  if (reason) return result(exitCodeOf(err.code), `${said}: ${reasonSentence(reason, subject)}`);
  switch (err.code) {
    case Code.InvalidArgument:
    case Code.OutOfRange:
      return result(EXIT.USAGE, `the gateway rejected the request: ${said}. Check the flags with \`agwctl ${context.command} --help\``);
    case Code.NotFound:
      return result(EXIT.NOT_FOUND, `${said}${context.notFoundHint ? `: ${context.notFoundHint}` : ""}`);
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
    case Code.Aborted:
      return result(EXIT.CONFLICT, `${said} (nothing was changed)`);
    case Code.PermissionDenied:
      return result(
        EXIT.PERMISSION_DENIED,
        `${said}: ask an admin for a key with role ${context.role ?? "editor or admin"} (\`agwctl keys create\`), then \`agwctl login\` with it`,
      );
    case Code.Unauthenticated:
      return result(EXIT.UNAUTHENTICATED, `${server} does not accept the API key (${said}): run \`agwctl login\` with a valid key, or set AGW_API_KEY`);
    case Code.ResourceExhausted:
      return result(EXIT.UNAVAILABLE, `${said}: wait a moment and retry`);
    case Code.Unavailable:
    case Code.DeadlineExceeded:
      return result(EXIT.UNAVAILABLE, `cannot reach ${server} (${said}): check that it runs and that --server is right, then retry`);
    case Code.Unimplemented:
      return result(EXIT.FAILURE, `${server} does not implement this call (${said}): it is older than this agwctl; upgrade the gateway`);
    case Code.Canceled:
      return result(EXIT.INTERRUPTED, "cancelled");
    default:
      return result(EXIT.FAILURE, `${server} failed (${said}): see the gateway's logs, then retry`);
  }
}

function untrustedResult(cause: Error, context: ErrorContext): { exitCode: ExitCode; message: string } {
  return {
    exitCode: EXIT.UNTRUSTED,
    message: `${context.server ?? "the gateway"} is not trusted (${cause.message}): check --ca-file or --ca-pin (\`openssl x509 -noout -fingerprint -sha256 -in gateway.pem\`)`,
  };
}

function exitCodeOf(code: Code): ExitCode {
  switch (code) {
    case Code.NotFound:
      return EXIT.NOT_FOUND;
    case Code.PermissionDenied:
      return EXIT.PERMISSION_DENIED;
    case Code.Unauthenticated:
      return EXIT.UNAUTHENTICATED;
    case Code.ResourceExhausted:
    case Code.Unavailable:
      return EXIT.UNAVAILABLE;
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
      return EXIT.CONFLICT;
    case Code.InvalidArgument:
      return EXIT.USAGE;
    default:
      return EXIT.FAILURE;
  }
}
