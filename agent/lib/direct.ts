import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import type { AgentHelloSchema, ControlStreamRequestSchema, ControlStreamResponse } from "../../gen/agentgateway/v1/control_pb.js";
import type { EventSchema, MetricPointSchema, UploadHeartbeatRequestSchema } from "../../gen/agentgateway/v1/ingest_pb.js";
import { authTranscript, registerTranscript } from "../../client/protocol/transcript.js";
import { sign } from "../../client/protocol/ed25519.js";

/**
 * Single requests to the gateway, one function per protocol step, no retries or state (the
 * tailscale "direct" half). The reconnect/backoff state machine (agent/lib/supervisor.ts, the
 * "auto" half) and the tests build on these.
 */
export type GatewayClient = Client<typeof AgentGatewayService>;

/** A client of AgentGatewayService over the given transport. */
export function gatewayClient(transport: Transport): GatewayClient {
  return createClient(AgentGatewayService, transport);
}

/** The agent's identity: its ed25519 key pair (the private key never leaves the host). */
export interface Identity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** What Register answered. */
export interface Registration {
  agentId: string;
  tenantId: string;
  state: AgentState;
  verificationCode: string;
}

/** Facts about the host, as Register and UploadHeartbeat carry them. */
export interface HostInfo {
  hostname?: string;
  os?: string;
  arch?: string;
  agentVersion?: string;
  labels?: Record<string, string>;
}

/** Registers with an enrollment token, proving possession of the identity key. */
export async function register(client: GatewayClient, input: { token: string; identity: Identity; name: string; host?: HostInfo }): Promise<Registration> {
  const proof = sign(input.identity.privateKey, registerTranscript({ token: input.token, publicKey: input.identity.publicKey, name: input.name }));
  const res = await client.register({
    enrollmentToken: input.token,
    identityPublicKey: input.identity.publicKey,
    name: input.name,
    host: input.host ?? {},
    proofSignature: proof,
  });
  return { agentId: res.agentId, tenantId: res.tenantId, state: res.state, verificationCode: res.verificationCode };
}

/** A session from a completed handshake. */
export interface Session {
  token: string;
  expiresAt: Date;
  heartbeatIntervalMs: number;
  /** When this process received it (the refresh point is measured from here). */
  issuedAt?: Date;
}

/** Runs Begin + Complete and returns the session. */
export async function handshake(client: GatewayClient, agentId: string, identity: Identity): Promise<Session> {
  const challenge = await client.beginAuthHandshake({ agentId, identityPublicKey: identity.publicKey });
  const signature = sign(
    identity.privateKey,
    authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId, publicKey: identity.publicKey }),
  );
  const res = await client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature });
  return {
    token: res.sessionToken,
    expiresAt: res.expiresAt ? timestampDate(res.expiresAt) : new Date(Date.now() + 3_600_000),
    heartbeatIntervalMs: msOf(res.heartbeatInterval, 30_000),
    issuedAt: new Date(),
  };
}

/** Call options carrying the session token. */
export function withSession(session: { token: string }): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${session.token}` } };
}

/** A Duration in ms, or the fallback when absent or non-positive. */
export function msOf(duration: Duration | undefined, fallbackMs: number): number {
  if (!duration) return fallbackMs;
  const ms = durationMs(duration);
  return ms > 0 ? ms : fallbackMs;
}

/** Sends one heartbeat; returns the interval the gateway asks for next (ms). */
export async function sendHeartbeat(
  client: GatewayClient,
  session: { token: string },
  heartbeat: MessageInitShape<typeof UploadHeartbeatRequestSchema>,
  signal?: AbortSignal,
): Promise<{ nextIntervalMs: number | undefined; serverTime: Date | undefined }> {
  const res = await client.uploadHeartbeat(heartbeat, { ...withSession(session), ...(signal ? { signal } : {}) });
  return {
    nextIntervalMs: res.nextHeartbeatInterval ? msOf(res.nextHeartbeatInterval, 30_000) : undefined,
    serverTime: res.serverTime ? timestampDate(res.serverTime) : undefined,
  };
}

/** Uploads one batch of points (at most 1000). */
export async function uploadTelemetry(
  client: GatewayClient,
  session: { token: string },
  points: Array<MessageInitShape<typeof MetricPointSchema>>,
  signal?: AbortSignal,
): Promise<{ accepted: number; duplicates: number }> {
  const res = await client.uploadTelemetry({ points }, { ...withSession(session), ...(signal ? { signal } : {}) });
  return { accepted: res.accepted, duplicates: res.duplicates };
}

/** Uploads one batch of events (at most 500, within the gateway's message size limit). */
export async function uploadEvents(
  client: GatewayClient,
  session: { token: string },
  events: Array<MessageInitShape<typeof EventSchema>>,
  signal?: AbortSignal,
): Promise<{ accepted: number; duplicates: number }> {
  const res = await client.uploadEvents({ events }, { ...withSession(session), ...(signal ? { signal } : {}) });
  return { accepted: res.accepted, duplicates: res.duplicates };
}

/** An agent → gateway ControlStream message. */
export type ControlRequest = MessageInitShape<typeof ControlStreamRequestSchema>;

/** One open ControlStream: push requests, iterate responses, end it. No reconnects. */
export interface ControlChannel {
  /** Queues a message for the gateway (ignored once the channel ended). */
  send(request: ControlRequest): void;
  /** The gateway's messages; ends when the stream ends, throws its error. */
  responses: AsyncIterable<ControlStreamResponse>;
  /** Half-closes cleanly: queued messages are written, then the request side ends. */
  end(): void;
  /** Cuts the call at once. */
  abort(reason?: unknown): void;
  /** Messages queued but not yet handed to the transport (to carry over to the next stream). */
  unsent(): ControlRequest[];
}

/**
 * Opens a ControlStream with the given hello as its first message (docs/protocol.md,
 * "ControlStream"). The request side is Connect's writable iterable; `unsent` tracks what the
 * transport has not pulled from it yet.
 */
export function openControlStream(client: GatewayClient, session: { token: string }, hello: MessageInitShape<typeof AgentHelloSchema>): ControlChannel {
  const queue = createWritableIterable<ControlRequest>();
  // Written but not yet pulled by the transport, oldest first (the queue hands them out in order).
  const pending: ControlRequest[] = [];
  let ended = false;
  const abort = new AbortController();
  const requests = (async function* () {
    for await (const next of queue) {
      pending.shift();
      yield next;
    }
  })();
  const send = (request: ControlRequest) => {
    if (ended || abort.signal.aborted) return;
    pending.push(request);
    // Settles once the transport pulled it; rejects if the consumer went away first (then the
    // message stays in `pending`, to be carried over).
    queue.write(request).catch(() => {});
  };
  send({ kind: { case: "hello", value: hello } });
  // Streams have no deadline: the gateway's pings and GoAway (and HTTP/2 PINGs) bound them.
  const responses = client.controlStream(requests, { ...withSession(session), signal: abort.signal, timeoutMs: 0 });
  const close = () => {
    ended = true;
    queue.close();
  };
  return {
    send,
    responses,
    end: close,
    abort(reason) {
      close();
      abort.abort(reason);
    },
    unsent: () => pending.slice(),
  };
}
