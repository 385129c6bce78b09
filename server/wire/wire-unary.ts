import type { Http2ServerRequest, Http2ServerResponse, OutgoingHttpHeaders } from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  type Message,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { toConnectError } from "../errors/connect-errors.js";
import { InvalidInputError } from "../errors/errors.js";
import { authenticateAgent } from "../identity/identity-interceptor.js";
import { type CallLogContext, runInCall } from "../observability/log-context.js";
import { REQUEST_ID_HEADER, recordCallEnd } from "../observability/rpc-telemetry.js";
import { EnvelopeReader, envelope, messageTooLarge } from "./envelope.js";
import { requestBytesKey } from "./request-bytes.js";
import { decodeRequest, headersOf, type WireOptions, type WireProtocol, wireCallContext } from "./wire-request.js";
import { closeAfterResponse, grpcTrailers } from "./wire-status.js";

// Why this exists: through connect-node a unary call costs ~0.4–0.8 ms of gateway CPU before
// any gateway code runs (measured with a trivial handler, bench/heartbeat.ts): async-iterable
// pipelines, an AbortController per call whose abort() builds a DOMException, Headers objects,
// a promise chain per interceptor. Agents call UploadHeartbeat, the uploads and the handshake
// all the time, so their common case — binary, uncompressed Connect or gRPC over HTTP/2, no
// deadline, tracing off (wire-request.ts) — is served here, straight from the HTTP/2 stream,
// by the same implementations connect-node registers and with the same checks in the same
// order as its interceptors: parse, authentication by the method's declared access, the
// tenant gate, values no column can store, the protovalidate rules, the error mapping, the
// request id and the RPC metric. Everything else falls through to connect-node.

/** One unary method the wire path serves, with the implementation connect-node also registers. */
export interface WireUnaryMethod {
  readonly method: DescMethodUnary;
  readonly impl: (request: Message, ctx: HandlerContext) => Promise<MessageInitShape<DescMessage>> | MessageInitShape<DescMessage>;
}

/** What the wire path needs from the gateway. */
export type WireUnaryOptions = WireOptions;

/** The methods `names` of `service`, served by `impl` (which must implement each). */
export function wireUnaryMethods<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  names: readonly (keyof S["method"] & string)[],
): WireUnaryMethod[] {
  return names.map((name) => {
    const method = service.method[name] as DescMethodUnary | undefined;
    const fn = impl[name] as WireUnaryMethod["impl"] | undefined;
    if (method?.methodKind !== "unary" || !fn) throw new Error(`${service.typeName}.${name} is not an implemented unary method`);
    return { method, impl: fn.bind(impl) };
  });
}

/** A served method, by its request path. */
interface Route extends WireUnaryMethod {
  readonly service: string;
  /** Who may call it, from its declared access: the wire path serves no operator or system RPC (it does not check roles). */
  readonly caller: "public" | "agent";
}

/** The unary calls the wire path serves, by request path. */
export class WireUnary {
  private readonly routes = new Map<string, Route>();

  /** Throws at start-up for a method whose declared access the wire path cannot enforce. */
  constructor(
    private readonly options: WireUnaryOptions,
    methods: readonly WireUnaryMethod[],
  ) {
    for (const m of methods) {
      const path = `/${m.method.parent.typeName}/${m.method.name}`;
      const caller = options.access.get(m.method)?.caller;
      if (caller !== "public" && caller !== "agent")
        throw new Error(`${path} is declared ${caller ?? "without access"}: the wire path serves only public and agent RPCs`);
      this.routes.set(path, { ...m, service: m.method.parent.typeName, caller });
    }
  }

  /** The route of a request path, if this path serves it. */
  route(path: string | undefined): Route | undefined {
    return path === undefined ? undefined : this.routes.get(path);
  }

  /** Serves one call; the caller checked the protocol (wire-request.ts). */
  serve(route: Route, protocol: WireProtocol, req: Http2ServerRequest, res: Http2ServerResponse): void {
    new WireUnaryCall(this.options, route, protocol, req, res).start();
  }
}

/** The handlers here never watch their signal (they are short and their work must finish once begun). */
const NEVER_ABORTED = new AbortController().signal;

/** One unary call on the wire path. */
class WireUnaryCall {
  private readonly started = performance.now();
  private readonly call: CallLogContext;
  private readonly logger: Logger;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  /** gRPC only: the request is enveloped, and a unary call carries exactly one. */
  private readonly reader: EnvelopeReader | undefined;
  private message: Buffer | undefined;
  /** A response (or the error) was sent, or the stream is gone. */
  private done = false;
  private requestEnded = false;

  constructor(
    private readonly options: WireUnaryOptions,
    private readonly route: Route,
    private readonly protocol: WireProtocol,
    private readonly req: Http2ServerRequest,
    private readonly res: Http2ServerResponse,
  ) {
    this.call = wireCallContext(req, `${route.service}/${route.method.name}`);
    this.logger = options.app.logger;
    this.reader = protocol === "grpc" ? new EnvelopeReader(options.maxMessageBytes) : undefined;
  }

  start(): void {
    this.res.once("close", () => {
      if (this.done) return;
      this.done = true;
      this.record(new ConnectError("the client closed the stream", Code.Canceled));
    });
    // A reset by the peer surfaces as 'close'; the error itself needs no handling.
    this.req.on("error", () => {});
    this.res.on("error", () => {});
    const declared = Number(this.req.headers["content-length"]);
    if (this.protocol === "connect" && declared > this.options.maxMessageBytes) {
      this.fail(messageTooLarge(declared, this.options.maxMessageBytes));
      return;
    }
    this.req.on("data", (chunk: Buffer) => this.onData(chunk));
    this.req.once("end", () => this.onRequestEnd());
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    try {
      if (this.reader) {
        this.reader.push(chunk, (flags, data) => {
          if (flags !== 0) throw new InvalidInputError("a compressed or flagged message on a call without an encoding");
          if (this.message) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
          this.message = Buffer.from(data);
        });
        return;
      }
      this.size += chunk.length;
      if (this.size > this.options.maxMessageBytes) throw messageTooLarge(this.size, this.options.maxMessageBytes);
      this.chunks.push(chunk);
    } catch (err) {
      this.fail(err);
    }
  }

  private onRequestEnd(): void {
    this.requestEnded = true;
    if (this.done) return;
    const body = this.reader ? this.message : this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    // The refusals connect-node makes of a body that is not one whole message, with its codes.
    if (this.reader?.pending) {
      this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      return;
    }
    if (body === undefined) {
      this.fail(new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
      return;
    }
    runInCall(this.call, () => this.invoke(body)).then(
      (output) => this.succeed(output),
      (err) => this.fail(err),
    );
  }

  /** The checks connect-node's interceptors make, in their order, then the implementation. */
  private async invoke(body: Buffer): Promise<{ body: Uint8Array; ctx: HandlerContext }> {
    const { method, impl } = this.route;
    const input = decodeRequest(method.input, body);
    const values = this.call.contextValues;
    values.set(requestBytesKey, body.length);
    const header = headersOf(this.req);
    if (this.route.caller === "agent") {
      const { agent } = await authenticateAgent(this.options.agents, { header, contextValues: values, method });
      this.options.app.tenantGate.assertActive(agent.tenantId);
    }
    this.options.rules(method.input, input);
    const ctx = handlerContext(method, this.protocol, this.req.url, header, values);
    const output = await impl(input, ctx);
    return { body: toBinary(method.output, create(method.output, output)), ctx };
  }

  private succeed({ body, ctx }: { body: Uint8Array; ctx: HandlerContext }): void {
    if (this.done) return;
    this.done = true;
    this.record(undefined);
    const headers: OutgoingHttpHeaders = {};
    ctx.responseHeader.forEach((value, key) => {
      headers[key] = value;
    });
    headers[REQUEST_ID_HEADER] = this.call.requestId;
    if (this.protocol === "connect") {
      // Connect unary has no trailers: they travel as headers prefixed "trailer-".
      ctx.responseTrailer.forEach((value, key) => {
        headers[`trailer-${key}`] = value;
      });
      headers["content-type"] = "application/proto";
      headers["content-length"] = body.length;
      this.res.writeHead(200, headers);
      this.res.end(body);
    } else {
      headers["content-type"] = "application/grpc+proto";
      this.res.writeHead(200, headers);
      this.res.write(envelope(0, body));
      const trailers = grpcTrailers(undefined);
      ctx.responseTrailer.forEach((value, key) => {
        trailers[key] ??= value;
      });
      this.res.addTrailers(trailers);
      this.res.end();
    }
    this.closeIfUnread();
  }

  /** Answers with the error as connect-node would: Connect as an HTTP status with a JSON body, gRPC in the trailers. */
  private fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    const error = toConnectError(err, this.logger);
    error.metadata.set(REQUEST_ID_HEADER, this.call.requestId);
    this.record(error);
    if (this.protocol === "connect") {
      const body = errorToJsonBytes(error, {});
      const headers: OutgoingHttpHeaders = { "content-type": "application/json", "content-length": body.length };
      error.metadata.forEach((value, key) => {
        headers[key] = value;
      });
      this.res.writeHead(codeToHttpStatus(error.code), headers);
      this.res.end(body);
    } else {
      this.res.writeHead(200, { "content-type": "application/grpc+proto" });
      this.res.addTrailers(grpcTrailers(error));
      this.res.end();
    }
    this.closeIfUnread();
  }

  /** A call answered before its request ended (refused mid-body) must not hold its stream. */
  private closeIfUnread(): void {
    if (!this.requestEnded) closeAfterResponse(this.res.stream);
  }

  private record(error: ConnectError | undefined): void {
    recordCallEnd(this.logger, this.call, { service: this.route.service, method: this.route.method.name, started: this.started }, error);
  }
}

/** The context a handler gets: what connect-node would give it, without the per-call abort controller. */
function handlerContext(method: DescMethodUnary, protocol: WireProtocol, url: string, requestHeader: Headers, values: ContextValues): HandlerContext {
  return {
    method,
    service: method.parent,
    signal: NEVER_ABORTED,
    timeoutMs: () => undefined,
    requestMethod: "POST",
    requestHeader,
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    protocolName: protocol,
    values,
    url,
  };
}
