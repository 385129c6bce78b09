/**
 * The stable `google.rpc.ErrorInfo` reasons the gateway sends (docs/protocol.md, "Errors").
 * The gateway raises them and every client decides by them, so both sides name them from this
 * one list; messages are for humans and may change.
 */
import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of every reason the gateway sends. */
export const ERROR_DOMAIN = "agentgateway.v1";

/** Every reason, by name. */
export const Reason = {
  AWAITING_APPROVAL: "AWAITING_APPROVAL",
  AGENT_REJECTED: "AGENT_REJECTED",
  AGENT_RETIRED: "AGENT_RETIRED",
  AGENT_REVOKED: "AGENT_REVOKED",
  KEY_ALREADY_BOUND: "KEY_ALREADY_BOUND",
  TOKEN_EXPIRED: "TOKEN_EXPIRED",
  TOKEN_USED: "TOKEN_USED",
  TOKEN_REVOKED: "TOKEN_REVOKED",
  TOKEN_NAME_MISMATCH: "TOKEN_NAME_MISMATCH",
  RATE_LIMITED: "RATE_LIMITED",
  INVALID_TRANSITION: "INVALID_TRANSITION",
  CLIENT_CERTIFICATE_REQUIRED: "CLIENT_CERTIFICATE_REQUIRED",
  CERTIFICATE_MISMATCH: "CERTIFICATE_MISMATCH",
  /** The caller's tenant is suspended by the provider: its operators and agents are refused, its streams closed. */
  TENANT_SUSPENDED: "TENANT_SUSPENDED",
  /** A system key was presented to a tenant RPC: the provider is not an operator of any tenant. */
  SYSTEM_KEY_NOT_ALLOWED: "SYSTEM_KEY_NOT_ALLOWED",
  /** A provider RPC (agentgateway.provider.v1) was called with something else than a system key. */
  SYSTEM_KEY_REQUIRED: "SYSTEM_KEY_REQUIRED",
} as const;

/** One of the reasons above. */
export type ReasonName = (typeof Reason)[keyof typeof Reason];

const KNOWN = new Set<string>(Object.values(Reason));

/**
 * The gateway's ErrorInfo reason carried by an error, or undefined when it carries none (or
 * one from another domain, e.g. a proxy's). Accepts anything thrown by a Connect client.
 */
export function reasonOf(err: unknown): ReasonName | undefined {
  if (!(err instanceof ConnectError)) return undefined;
  for (const info of err.findDetails(ErrorInfoSchema)) {
    if (info.domain === ERROR_DOMAIN && KNOWN.has(info.reason)) return info.reason as ReasonName;
  }
  return undefined;
}
