import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { RateLimitedError } from "../errors/errors.js";
import { type Principal, principalKey } from "./principal.js";

/**
 * Caps the server streams (server-streaming and bidi calls) one credential may hold open at
 * once — an operator key's WatchRollout / WatchAgents, an agent's ControlStream — so that no
 * credential can pin the gateway's memory with streams. Counted per process, released when the
 * response stream ends for any reason. Runs after the identity interceptor; anonymous callers
 * have no streaming RPCs.
 */
export function streamCapInterceptor(maxPerCredential: number): Interceptor {
  const open = new Map<string, number>();
  const release = (key: string) => {
    const left = (open.get(key) ?? 1) - 1;
    if (left <= 0) open.delete(key);
    else open.set(key, left);
  };
  return (next) => async (req) => {
    if (req.method.methodKind === "unary" || req.method.methodKind === "client_streaming") return next(req);
    const key = credentialOf(req.contextValues.get(principalKey));
    if (key === undefined) return next(req);
    const count = open.get(key) ?? 0;
    if (count >= maxPerCredential) {
      throw new RateLimitedError(`this credential already holds ${count} open streams (the most allowed): close one, then retry`, 1_000, "streams_per_credential");
    }
    open.set(key, count + 1);
    let res: StreamResponse;
    try {
      res = (await next(req)) as StreamResponse;
    } catch (err) {
      release(key);
      throw err;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } finally {
          release(key);
        }
      })(),
    } as StreamResponse;
  };
}

function credentialOf(principal: Principal): string | undefined {
  if (principal.kind === "operator") return `key:${principal.operator.keyId}`;
  if (principal.kind === "agent") return `agent:${principal.agent.agentId}`;
  return undefined;
}
