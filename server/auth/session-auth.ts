import type { Bus } from "../bus/bus.js";
import type { Executor } from "../db/database.js";
import { PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { hashSecret, parseSecret } from "../../client/protocol/secrets.js";
import type { AgentIdentity } from "../identity/principal.js";
import { findSessionByTokenHash } from "./session-store.js";

interface CacheEntry {
  identity: AgentIdentity;
  cachedUntil: number;
}

/**
 * Resolves session tokens to agent identities, with a short cache so hot paths (uploads) do not
 * pay a database round trip per call. Any change to an agent or its session — revocation, a
 * newer handshake — is announced on the bus, and drops the agent's cache entries at once on
 * every replica.
 */
export class SessionResolver {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly byAgent = new Map<string, Set<string>>();
  private readonly unsubscribe: Array<() => void>;

  constructor(
    private readonly db: Executor,
    bus: Bus,
    private readonly cacheMs = 60_000,
    private readonly maxEntries = 100_000,
  ) {
    const drop = (agentId: string) => this.forgetAgent(agentId);
    this.unsubscribe = [bus.subscribe("agent_changed", drop), bus.subscribe("session_changed", drop)];
  }

  /** The identity behind a session token; throws UNAUTHENTICATED or PERMISSION_DENIED. */
  async resolve(token: string | undefined): Promise<AgentIdentity> {
    if (!token || !parseSecret(token, "session")) {
      throw new UnauthenticatedError("missing or malformed session token: send Authorization: Bearer <session token>");
    }
    const hashKey = Buffer.from(hashSecret(token)).toString("base64");
    const now = Date.now();
    const hit = this.cache.get(hashKey);
    if (hit && hit.cachedUntil > now) return hit.identity;
    const row = await findSessionByTokenHash(this.db, hashSecret(token));
    if (!row) throw new UnauthenticatedError("session is not valid (expired or replaced by a newer handshake): handshake again");
    if (row.agentState === "REVOKED") throw new PermissionDeniedError("this agent is revoked", "AGENT_REVOKED");
    if (row.agentState !== "ACTIVE") throw new UnauthenticatedError(`session is not valid: agent is ${row.agentState}`);
    if (row.expiresAt.getTime() <= now) throw new UnauthenticatedError("session has expired: handshake again");
    const identity: AgentIdentity = { agentId: row.agentId, tenantId: row.tenantId, sessionId: row.sessionId, expiresAt: row.expiresAt };
    this.remember(hashKey, identity, Math.min(now + this.cacheMs, identity.expiresAt.getTime()));
    return identity;
  }

  /** Drops every cached session of the agent (called on revocation and new sessions). */
  forgetAgent(agentId: string): void {
    for (const hashKey of this.byAgent.get(agentId) ?? []) this.cache.delete(hashKey);
    this.byAgent.delete(agentId);
  }

  /** Drops the whole cache (after a lost bus connection, when invalidations may have been missed). */
  clear(): void {
    this.cache.clear();
    this.byAgent.clear();
  }

  close(): void {
    for (const off of this.unsubscribe) off();
  }

  private remember(hashKey: string, identity: AgentIdentity, cachedUntil: number): void {
    if (this.cache.size >= this.maxEntries) {
      this.cache.clear();
      this.byAgent.clear();
    }
    this.cache.set(hashKey, { identity, cachedUntil });
    let keys = this.byAgent.get(identity.agentId);
    if (!keys) {
      keys = new Set();
      this.byAgent.set(identity.agentId, keys);
    }
    keys.add(hashKey);
  }
}
