import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { RateLimitedError } from "../errors/errors.js";
import { type Principal, principalKey } from "./principal.js";

/**
 * Caps the server streams (server-streaming and bidi calls) one credential may hold open at
 * once — an operator key's WatchRollout / WatchAgents, an agent's ControlStream — so that no
 * credential can pin the gateway's memory with streams. Counted per process, whichever
 * transport serves the stream (the interceptor below, or wire-control-stream.ts).
 */
export class StreamCaps {
  private readonly open = new Map<string, number>();

  constructor(private readonly maxPerCredential: number) {}

  /** Counts one more stream of the principal; throws RESOURCE_EXHAUSTED past the cap. Returns its release (idempotent). */
  acquire(principal: Principal): () => void {
    const key = credentialOf(principal);
    if (key === undefined) return () => {};
    const count = this.open.get(key) ?? 0;
    if (count >= this.maxPerCredential) {
      throw new RateLimitedError(`this credential already holds ${count} open streams (the most allowed): close one, then retry`, 1_000, "streams_per_credential");
    }
    this.open.set(key, count + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }
}

/** The caps as an interceptor for connect-node; released when the response stream ends for any reason. Runs after the identity interceptor. */
export function streamCapInterceptor(caps: StreamCaps): Interceptor {
  return (next) => async (req) => {
    if (req.method.methodKind === "unary" || req.method.methodKind === "client_streaming") return next(req);
    const release = caps.acquire(req.contextValues.get(principalKey));
    let res: StreamResponse;
    try {
      res = (await next(req)) as StreamResponse;
    } catch (err) {
      release();
      throw err;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* messages;
        } finally {
          release();
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
