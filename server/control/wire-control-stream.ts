import type { Http2ServerRequest, Http2ServerResponse, OutgoingHttpHeaders } from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamToJson } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { type ControlStreamRequest, ControlStreamRequestSchema, ControlStreamResponseSchema } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { toConnectError } from "../errors/connect-errors.js";
import { InvalidInputError } from "../errors/errors.js";
import { authenticateAgent } from "../identity/identity-interceptor.js";
import type { AgentIdentity } from "../identity/principal.js";
import type { StreamCaps } from "../identity/stream-cap-interceptor.js";
import { type CallLogContext, runInCall } from "../observability/log-context.js";
import { REQUEST_ID_HEADER, recordCallEnd } from "../observability/rpc-telemetry.js";
import { tenantSuspendedError } from "../tenancy/tenant-gate.js";
import type { AgentConnection, Outgoing, StreamSink } from "./connection.js";
import { HELLO_TIMEOUT_MS, handleControlRequest, helloRequired, openControlSession } from "./control-session.js";
import { EnvelopeReader, envelope, FLAG_END_STREAM } from "../wire/envelope.js";
import { decodeRequest, headersOf, type WireOptions, type WireProtocol, wireCallContext } from "../wire/wire-request.js";
import { closeAfterResponse, grpcTrailers } from "../wire/wire-status.js";

// Why this exists: an idle ControlStream through connect-node costs ~45 KiB of heap in the
// library's async-iterable pipeline (generators, promises and closures per stream) before the
// gateway's interceptors add their own, and connect-node serializes every message once per
// stream. A fleet is mostly idle streams and tenant-wide notices, so the common case — binary,
// uncompressed Connect or gRPC, no deadline, tracing off — is served here, event-driven on the
// HTTP/2 stream, with each message encoded once and the same bytes written to every stream.
// Everything else (the JSON codecs, compression, deadlines, gRPC-Web, HTTP/1.1, tracing) falls
// through to connect-node and its interceptors; both paths run control-session.ts and the same
// checks: authentication, tenant gate, per-credential stream cap, message size, storable
// values and protovalidate rules, error mapping, request id and the RPC metric.

const SERVICE = AgentGatewayService.typeName;
const METHOD = AgentGatewayService.method.controlStream;
/** The request path of the ControlStream. */
export const CONTROL_STREAM_PATH = `/${SERVICE}/${METHOD.name}`;
const PATH = CONTROL_STREAM_PATH;
/** Bytes a stream may hold unsent for an agent that does not read before the stream is closed. */
const MAX_UNREAD_BYTES = 1 << 20;
/** Messages the agent may send after its hello while the stream is being registered. */
const MAX_EARLY_MESSAGES = 64;

/** What the wire path needs from the gateway. */
export interface WireControlStreamOptions extends WireOptions {
  caps: StreamCaps;
}

/** Serves ControlStream calls; the caller checked the protocol (wire-request.ts). */
export class WireControlStream {
  constructor(private readonly options: WireControlStreamOptions) {
    // ControlStream is for agents; if its declared access ever changes, this path must not serve it.
    if (options.access.get(METHOD)?.caller !== "agent") throw new Error(`${PATH} is not declared CALLER_AGENT: the wire ControlStream would skip its access rule`);
  }

  serve(protocol: WireProtocol, req: Http2ServerRequest, res: Http2ServerResponse): void {
    new WireControlCall(this.options, protocol, req, res).start();
  }
}

/** Each message's envelope, encoded once: a tenant-wide notice is the same object for every stream. */
const encoded = new WeakMap<Outgoing, Buffer>();

function envelopeOf(message: Outgoing): Buffer {
  let bytes = encoded.get(message);
  if (!bytes) {
    bytes = envelope(0, toBinary(ControlStreamResponseSchema, create(ControlStreamResponseSchema, message)));
    encoded.set(message, bytes);
  }
  return bytes;
}

/** One ControlStream call on the wire path: it is the sink the hub writes to. */
class WireControlCall implements StreamSink {
  private readonly started = performance.now();
  private readonly call: CallLogContext;
  private readonly reader: EnvelopeReader;
  private readonly logger: Logger;
  private identity: AgentIdentity | undefined;
  private conn: AgentConnection | undefined;
  /** Messages after the hello that arrived while the stream was being registered. */
  private early: ControlStreamRequest[] | undefined;
  private releaseCap: () => void = () => {};
  private releaseTenant: () => void = () => {};
  private helloTimer: NodeJS.Timeout | undefined;
  private headersSent = false;
  /** The response was ended (normally or with an error). */
  private ended = false;
  /** The HTTP/2 stream is gone; nothing may be written or registered any more. */
  private closed = false;
  private requestEnded = false;

  constructor(
    private readonly options: WireControlStreamOptions,
    private readonly protocol: WireProtocol,
    private readonly req: Http2ServerRequest,
    private readonly res: Http2ServerResponse,
  ) {
    this.call = wireCallContext(req, `${SERVICE}/${METHOD.name}`);
    this.reader = new EnvelopeReader(options.maxMessageBytes);
    this.logger = options.app.logger;
  }

  start(): void {
    this.res.once("close", () => this.onClosed());
    // A reset by the peer surfaces as 'close'; the error itself needs no handling.
    this.req.on("error", () => {});
    this.res.on("error", () => {});
    runInCall(this.call, () => this.admit()).catch((err) => this.finish(err));
  }

  // --- StreamSink: what the hub writes ---

  write(message: Outgoing): void {
    if (this.ended) return;
    this.sendHeaders();
    this.res.write(envelopeOf(message));
    // A peer that does not read holds our memory: past the bound its stream ends. Its
    // commands stay pending and are delivered when it reconnects.
    if (this.res.stream.writableLength > MAX_UNREAD_BYTES) {
      this.finish(new ConnectError("the agent is not reading its ControlStream: closed", Code.ResourceExhausted));
    }
  }

  end(): void {
    this.finish(undefined);
  }

  // --- the call ---

  /** Authenticates, applies the tenant gate and the stream cap, then starts reading. */
  private async admit(): Promise<void> {
    const { app } = this.options;
    const header = headersOf(this.req);
    const principal = await authenticateAgent(this.options.agents, { header, contextValues: this.call.contextValues, method: METHOD });
    const identity = principal.agent;
    if (this.closed) return;
    app.tenantGate.assertActive(identity.tenantId);
    this.releaseCap = this.options.caps.acquire(principal);
    const tracked = app.tenantGate.track(identity.tenantId);
    this.releaseTenant = tracked.release;
    if (tracked.signal.aborted) throw tenantSuspendedError();
    tracked.signal.addEventListener("abort", () => this.finish(tenantSuspendedError()), { once: true });
    this.identity = identity;
    this.helloTimer = setTimeout(() => this.finish(helloRequired()), HELLO_TIMEOUT_MS);
    this.helloTimer.unref();
    this.req.on("data", (chunk: Buffer) => this.onData(chunk));
    this.req.once("end", () => this.onRequestEnd());
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    try {
      this.reader.push(chunk, (flags, data) => {
        if (flags !== 0) throw new InvalidInputError("a compressed or flagged message on a stream without an encoding");
        this.onMessage(decodeRequest(ControlStreamRequestSchema, data));
      });
    } catch (err) {
      this.finish(err);
    }
  }

  private onMessage(message: ControlStreamRequest): void {
    if (this.ended) return;
    this.options.rules(ControlStreamRequestSchema, message);
    if (this.conn) {
      if (!this.conn.closed && !handleControlRequest(this.options.app, this.conn, message)) this.req.pause();
      return;
    }
    if (this.early) {
      if (this.early.length >= MAX_EARLY_MESSAGES) throw new InvalidInputError("too many messages before the welcome: wait for it");
      this.early.push(message);
      return;
    }
    clearTimeout(this.helloTimer);
    this.early = [];
    const identity = this.identity;
    if (!identity) return;
    runInCall(this.call, () => openControlSession(this.options.app, identity, message, this)).then(
      (conn) => this.onOpened(conn),
      (err) => this.finish(err),
    );
  }

  private onOpened(conn: AgentConnection): void {
    this.conn = conn;
    if (this.closed || this.ended) {
      this.options.app.control.remove(conn);
      return;
    }
    const early = this.early ?? [];
    this.early = undefined;
    for (const message of early) if (conn.closed || !handleControlRequest(this.options.app, conn, message)) break;
    if (this.requestEnded) conn.close();
  }

  /** The agent closed its side: the stream ends (after the hub's last message), as through connect-node. */
  private onRequestEnd(): void {
    this.requestEnded = true;
    if (this.conn) this.conn.close();
    else if (!this.early) this.finish(helloRequired());
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    const headers: OutgoingHttpHeaders = { "content-type": this.protocol === "connect" ? "application/connect+proto" : "application/grpc+proto", [REQUEST_ID_HEADER]: this.call.requestId };
    this.res.writeHead(200, headers);
  }

  /** Ends the response once: with the status (gRPC trailers or the Connect end-stream message), then unregisters. */
  private finish(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.helloTimer);
    const error = err === undefined ? undefined : toConnectError(err, this.logger);
    error?.metadata.set(REQUEST_ID_HEADER, this.call.requestId);
    recordCallEnd(this.logger, this.call, { service: SERVICE, method: METHOD.name, started: this.started }, error);
    if (!this.closed) {
      this.sendHeaders();
      if (this.protocol === "connect") {
        const json = endStreamToJson(error?.metadata ?? new Headers(), error, undefined);
        this.res.end(envelope(FLAG_END_STREAM, Buffer.from(JSON.stringify(json))));
      } else {
        this.res.addTrailers(grpcTrailers(error));
        this.res.end();
      }
      closeAfterResponse(this.res.stream);
    }
    this.release();
  }

  /** The HTTP/2 stream closed: normally after finish(), or because the agent reset it or went away. */
  private onClosed(): void {
    this.closed = true;
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this.helloTimer);
      recordCallEnd(this.logger, this.call, { service: SERVICE, method: METHOD.name, started: this.started }, new ConnectError("the agent closed the stream", Code.Canceled));
    }
    this.release();
  }

  private release(): void {
    this.releaseCap();
    this.releaseTenant();
    if (this.conn) this.options.app.control.remove(this.conn);
  }
}
