import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { agentCertificateKey } from "../ca/cert-auth.js";
import { agentCertificateOf } from "../ca/cert-gate.js";

/** The remote address of the connection a call arrived on (for per-source rate limits). */
export const peerAddressKey = createContextKey<string>("unknown", { description: "peer address" });

/** Context values for connectNodeAdapter: records the peer address and, with mTLS, the agent certificate of each call. */
export function peerContextValues(req: IncomingMessage | Http2ServerRequest): ContextValues {
  const values = createContextValues().set(peerAddressKey, req.socket?.remoteAddress ?? "unknown");
  const certificate = agentCertificateOf(req.socket);
  return certificate ? values.set(agentCertificateKey, certificate) : values;
}

/** The peer address of a call. */
export function peerOf(ctx: HandlerContext): string {
  return ctx.values.get(peerAddressKey);
}
