import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import { authTranscript, registerTranscript } from "../../server/protocol/transcript.js";
import { sign } from "../../server/protocol/ed25519.js";

/**
 * Single requests to the gateway, one function per protocol step, no retries or state: the
 * daemon's reconnect/backoff machine (agent/lib/…) and the tests build on these.
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

/** Registers with an enrollment token, proving possession of the identity key. */
export async function register(
  client: GatewayClient,
  input: { token: string; identity: Identity; name: string; host?: { hostname?: string; os?: string; arch?: string; agentVersion?: string; labels?: Record<string, string> } },
): Promise<Registration> {
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
}

/** Runs Begin + Complete and returns the session. */
export async function handshake(client: GatewayClient, agentId: string, identity: Identity): Promise<Session> {
  const challenge = await client.beginAuthHandshake({ agentId, identityPublicKey: identity.publicKey });
  const signature = sign(
    identity.privateKey,
    authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId, publicKey: identity.publicKey }),
  );
  const res = await client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature });
  const interval = res.heartbeatInterval;
  return {
    token: res.sessionToken,
    expiresAt: res.expiresAt ? timestampDate(res.expiresAt) : new Date(Date.now() + 3_600_000),
    heartbeatIntervalMs: interval ? Number(interval.seconds) * 1000 + Math.floor(interval.nanos / 1e6) : 30_000,
  };
}

/** Call options carrying the session token. */
export function withSession(session: { token: string }): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${session.token}` } };
}
