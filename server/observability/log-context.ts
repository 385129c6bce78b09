import { AsyncLocalStorage } from "node:async_hooks";
import type { ContextValues } from "@connectrpc/connect";
import { principalKey } from "../identity/principal.js";

/**
 * What every log line written while a call runs is stamped with. The principal is read lazily
 * from the call's context values, because the identity interceptor resolves it after this
 * record was opened (a line logged before authentication has no tenant yet, which is the truth).
 */
export interface CallLogContext {
  requestId: string;
  /** `package.Service/Method` of the call. */
  rpc: string;
  contextValues: ContextValues;
  /** Set when tracing is on: the trace this call's span belongs to. */
  traceId?: string;
  spanId?: string;
}

const calls = new AsyncLocalStorage<CallLogContext>();

/** Runs `fn` (and everything it awaits) as part of the call described by `ctx`. */
export function runInCall<T>(ctx: CallLogContext, fn: () => T): T {
  return calls.run(ctx, fn);
}

/** The call the current code runs for, if any. */
export function currentCall(): CallLogContext | undefined {
  return calls.getStore();
}

/**
 * pino mixin: the request id, tenant, agent (or operator key) and trace of the current call.
 * Costs one AsyncLocalStorage lookup per line; lines outside a call (workers) get nothing.
 */
export function callLogFields(): Record<string, string> {
  const call = calls.getStore();
  if (!call) return {};
  const fields: Record<string, string> = { requestId: call.requestId, rpc: call.rpc };
  const principal = call.contextValues.get(principalKey);
  if (principal.kind === "agent") {
    fields.tenantId = principal.agent.tenantId;
    fields.agentId = principal.agent.agentId;
  } else if (principal.kind === "operator") {
    fields.tenantId = principal.operator.tenantId;
    fields.operatorKeyId = principal.operator.keyId;
  }
  if (call.traceId) fields.traceId = call.traceId;
  if (call.spanId) fields.spanId = call.spanId;
  return fields;
}
