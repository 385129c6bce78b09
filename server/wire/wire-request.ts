import type { Http2ServerRequest } from "node:http2";
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import type { AppContext } from "../app/context.js";
import { peerContextValues } from "../app/peer.js";
import type { CallLogContext } from "../observability/log-context.js";
import { REQUEST_ID_HEADER, requestIdFor } from "../observability/rpc-telemetry.js";
import { InvalidInputError } from "../errors/errors.js";
import type { AccessPolicy } from "../identity/access-policy.js";
import type { Authenticator } from "../identity/identity-interceptor.js";
import type { AgentIdentity } from "../identity/principal.js";
import type { RequestRules } from "../validation/request-rules.js";

// Which requests the wire paths (beneath connect-node) serve, decided from the headers alone:
// binary protobuf, no compression, no deadline, over HTTP/2 — what agents send. Everything else
// (JSON, compression, deadlines, gRPC-Web, HTTP/1.1) stays with connect-node, which implements
// the whole protocol; the wire paths only ever take the common case.

/** What both wire paths need from the gateway. */
export interface WireOptions {
  app: AppContext;
  access: AccessPolicy;
  /** The same agent authenticators the identity interceptor uses. */
  agents: readonly Authenticator<AgentIdentity>[];
  maxMessageBytes: number;
  /** The storable-value and protovalidate checks (validation/request-rules.ts), one instance for both paths. */
  rules: RequestRules;
}

/** The protocol of a request a wire path serves. */
export type WireProtocol = "connect" | "grpc";

/** Whether the method streams (Connect's enveloped `application/connect+proto`) or is unary (`application/proto`). */
export type WireShape = "stream" | "unary";

const CONNECT_TYPE: Record<WireShape, string> = { stream: "application/connect+proto", unary: "application/proto" };
/** Connect names the body's encoding differently for streams and unary calls. */
const CONNECT_ENCODING: Record<WireShape, string> = { stream: "connect-content-encoding", unary: "content-encoding" };

/** The protocol of a request the wire path for `shape` serves, or undefined to leave it to connect-node. */
export function wireProtocolOf(req: Http2ServerRequest, shape: WireShape): WireProtocol | undefined {
  if (req.httpVersionMajor !== 2 || req.method !== "POST") return undefined;
  const h = req.headers;
  if (h["connect-timeout-ms"] !== undefined || h["grpc-timeout"] !== undefined) return undefined;
  const type = h["content-type"];
  if (type === CONNECT_TYPE[shape]) return isIdentity(h[CONNECT_ENCODING[shape]]) ? "connect" : undefined;
  if (type === "application/grpc" || type === "application/grpc+proto") return isIdentity(h["grpc-encoding"]) ? "grpc" : undefined;
  return undefined;
}

function isIdentity(encoding: string | string[] | undefined): boolean {
  return encoding === undefined || encoding === "identity";
}

/** The request's headers as a fetch Headers (what the authenticators read), without HTTP/2 pseudo-headers. */
export function headersOf(req: Http2ServerRequest): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else headers.append(name, value);
  }
  return headers;
}

/** A wire-path call's log and metric context, as the telemetry interceptor makes it: the caller's request id (or a new one), the RPC, the peer. */
export function wireCallContext(req: Http2ServerRequest, rpc: string): CallLogContext {
  const offered = req.headers[REQUEST_ID_HEADER];
  return { requestId: requestIdFor(typeof offered === "string" ? offered : undefined), rpc, contextValues: peerContextValues(req) };
}

/** A request message, or INVALID_ARGUMENT for bytes that are not one (connect-node says INTERNAL: it is the caller's fault). */
export function decodeRequest<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw new InvalidInputError(`the message is not a ${schema.name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
