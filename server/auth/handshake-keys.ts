import type { Logger } from "pino";
import type { Executor } from "../db/database.js";
import type { Worker } from "../workers/worker.js";
import type { MacKey } from "./challenge-mac.js";
import { ensureHandshakeKey, newestHandshakeKeys } from "./handshake-key-store.js";

/** Keys kept for verification: the signing one and the ones before it (rotation). */
const KEPT = 3;

/**
 * The MAC keys of stateless challenges on this replica, shared by all replicas and workers
 * through the database (handshake_keys). Read at start (adding key 1 on a new database) and
 * every `refreshMs`. Challenges are signed with the newest key that was added at least
 * `activationMs` ago — longer than the refresh interval, so every replica knows a new key
 * before any replica signs with it — or, while no key is that old, with the oldest one known
 * (a new database). Every kept key verifies. Rotation: docs/security.md.
 */
export class HandshakeKeys implements Worker {
  readonly name = "handshake-keys";
  private keys: Array<MacKey & { activeAtMs: number }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Executor,
    private readonly logger: Pick<Logger, "warn">,
    private readonly refreshMs = 60_000,
    private readonly activationMs = 150_000,
  ) {}

  async start(): Promise<void> {
    await ensureHandshakeKey(this.db);
    await this.refresh();
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.logger.warn({ err }, "reading handshake keys failed; keeping the previous ones"));
    }, this.refreshMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }

  /** Re-reads the keys. */
  async refresh(): Promise<void> {
    const now = Date.now();
    const rows = await newestHandshakeKeys(this.db, KEPT);
    if (rows.length === 0) throw new Error("no handshake key in the database");
    this.keys = rows.map((r) => ({ id: r.id, secret: r.secret, activeAtMs: now - r.ageMs + this.activationMs }));
  }

  /** The key new challenges are tagged with. */
  signing(now = Date.now()): MacKey {
    const key = this.keys.find((k) => k.activeAtMs <= now) ?? this.keys[this.keys.length - 1];
    if (!key) throw new Error("handshake keys are not loaded (the worker was not started)");
    return key;
  }

  /** Every key that may have tagged a live challenge, newest first. */
  verifying(): readonly MacKey[] {
    return this.keys;
  }
}
