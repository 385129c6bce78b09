import type { Logger } from "pino";
import { type GatewayClient, handshake, type Identity, type Session } from "./direct.js";
import type { AgentStateFile, StateStore } from "./state.js";

/** Keep using a session until this close to its expiry (or 10 % of its lifetime, if shorter). */
const SESSION_MARGIN_MS = 10_000;

/** What the session keeper needs. */
export interface SessionKeeperOptions {
  client: GatewayClient;
  identity: Identity;
  store: StateStore;
  /** The loaded state file (approvedAt is recorded on the first handshake). */
  state: AgentStateFile;
  logger: Logger;
  random: () => number;
  /** Called before every handshake (observer events). */
  onHandshake(): void;
}

/** Callbacks of a scheduled refresh. */
export interface RefreshHandlers {
  /** True once the agent is stopping: a refresh that comes due then is skipped. */
  stopping(): boolean;
  /** The new session is stored: the stream of the old one should be reopened. */
  refreshed(): void;
  /** The refresh handshake failed; the current session stays in use. */
  failed(err: unknown): void;
}

/**
 * The agent's session: handshakes only when needed, adopts a newer session that another
 * process (`agw-agent refresh`) stored, refreshes ahead of expiry, and never adopts a token the
 * gateway refused again. Protocol: docs/protocol.md, "Sessions".
 */
export class SessionKeeper {
  private session: Session | undefined;
  /** A token the gateway refused: never adopted again from session.json. */
  private refusedToken: string | undefined;
  /** A session refresh in flight (its handshake fences the current stream). */
  private refreshing: Promise<Session> | undefined;

  constructor(private readonly options: SessionKeeperOptions) {}

  /** The session in use, if any (never logged: it holds the token). */
  get current(): Session | undefined {
    return this.session;
  }

  /** Adopts the session a previous run stored, if it is still usable. */
  async load(): Promise<void> {
    this.session = await this.stored();
  }

  /** The session to use: the current one while valid, one another command stored, or a new handshake. */
  async ensure(): Promise<Session> {
    if (this.refreshing) {
      try {
        return await this.refreshing;
      } catch {
        // the refresh failed: decide below like any other time
      }
    }
    if (this.session && usable(this.session)) return this.session;
    const stored = await this.stored();
    if (stored && stored.token !== this.session?.token) {
      this.session = stored;
      return stored;
    }
    return await this.handshake();
  }

  /**
   * The gateway refused `token`: never adopt it again, and forget it if it is still current so
   * the next attempt handshakes. `clearStored` also deletes session.json (a refused session);
   * a session that merely ended keeps the file, which another process may have replaced.
   */
  refuse(token: string, clearStored: boolean): void {
    this.refusedToken = token;
    if (this.session?.token !== token) return;
    this.session = undefined;
    if (clearStored) void this.options.store.clearSession().catch(() => {});
  }

  /** Whether our own refresh replaced `session` (so its SESSION_ENDED was expected). */
  replaced(session: Session): boolean {
    return this.refreshing !== undefined || (this.session !== undefined && this.session.token !== session.token);
  }

  /** Drops the session from memory (revocation; the caller wipes session.json). */
  forget(): void {
    this.session = undefined;
  }

  /**
   * Handshakes again at about two thirds of the session's lifetime (jittered, so a fleet that
   * connected together does not refresh together). Returns the timer, for the caller to clear.
   */
  scheduleRefresh(session: Session, handlers: RefreshHandlers): NodeJS.Timeout {
    const issued = (session.issuedAt ?? new Date()).getTime();
    const lifetime = session.expiresAt.getTime() - issued;
    const at = issued + lifetime * (0.6 + this.options.random() * 0.1);
    const delay = Math.max(1000, at - Date.now());
    const timer = setTimeout(() => {
      void (async () => {
        if (this.session?.token !== session.token || handlers.stopping()) return;
        try {
          this.refreshing = this.handshake();
          await this.refreshing;
          handlers.refreshed();
        } catch (err) {
          handlers.failed(err);
        } finally {
          this.refreshing = undefined;
        }
      })();
    }, delay);
    timer.unref();
    return timer;
  }

  private async handshake(): Promise<Session> {
    const { client, identity, state, store, logger } = this.options;
    this.options.onHandshake();
    const session = await handshake(client, state.agentId, identity);
    this.session = session;
    await store.saveSession({
      token: session.token,
      issuedAt: (session.issuedAt ?? new Date()).toISOString(),
      expiresAt: session.expiresAt.toISOString(),
      heartbeatIntervalMs: session.heartbeatIntervalMs,
    });
    if (!state.approvedAt) {
      state.approvedAt = new Date().toISOString();
      await store.save(state);
    }
    logger.info({ expiresAt: session.expiresAt.toISOString() }, "handshake complete: new session");
    return session;
  }

  private async stored(): Promise<Session | undefined> {
    const stored = await this.options.store.loadSession();
    if (!stored || stored.token === this.refusedToken) return undefined;
    const session: Session = {
      token: stored.token,
      expiresAt: new Date(stored.expiresAt),
      heartbeatIntervalMs: stored.heartbeatIntervalMs || 30_000,
      issuedAt: new Date(stored.issuedAt),
    };
    return usable(session) ? session : undefined;
  }
}

function usable(session: Session): boolean {
  const lifetime = session.expiresAt.getTime() - (session.issuedAt ?? new Date()).getTime();
  return session.expiresAt.getTime() - Date.now() > Math.min(SESSION_MARGIN_MS, lifetime * 0.1);
}
