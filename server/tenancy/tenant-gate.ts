import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Bus } from "../bus/bus.js";
import type { Kysely } from "kysely";
import type { Schema } from "../db/schema.js";
import { PermissionDeniedError } from "../errors/errors.js";
import { principalKey, tenantOfPrincipal } from "../identity/principal.js";
import type { Worker } from "../workers/worker.js";
import { suspendedTenantIds } from "./tenant-store.js";

/** The error every call of a suspended tenant gets, and every stream of it ends with. */
export function tenantSuspendedError(): PermissionDeniedError {
  return new PermissionDeniedError("this tenant is suspended by the provider: its operators and agents are refused until it is resumed", "TENANT_SUSPENDED");
}

/**
 * Which tenants are suspended, on this replica: the set is small, so it is held in memory and
 * every call is checked without a database round trip. It is re-read when any replica
 * announces `tenant_changed`, when the bus reconnects (`refresh()` from the resync), and every
 * `refreshMs` as a safety net. A tenant that becomes suspended has its open streams here ended
 * with TENANT_SUSPENDED.
 */
export class TenantGate implements Worker {
  readonly name = "tenant-gate";
  private suspended = new Set<string>();
  private readonly streams = new Map<string, Set<AbortController>>();
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly refreshMs = 30_000,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.bus.subscribe("tenant_changed", () => void this.refresh());
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
  }

  /** Whether the tenant is suspended, as this replica last read it. */
  isSuspended(tenantId: string): boolean {
    return this.suspended.has(tenantId);
  }

  /** Throws TENANT_SUSPENDED for a suspended tenant. */
  assertActive(tenantId: string): void {
    if (this.suspended.has(tenantId)) throw tenantSuspendedError();
  }

  /** Re-reads the suspended set (coalesced: a call during a read causes one more read). */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try {
          this.apply(new Set(await suspendedTenantIds(this.db)));
        } catch (err) {
          this.logger.warn({ err }, "reading suspended tenants failed; keeping the previous set");
        }
      } while (this.again);
    })().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private apply(next: Set<string>): void {
    this.suspended = next;
    for (const tenantId of next) {
      const open = this.streams.get(tenantId);
      if (!open) continue;
      this.streams.delete(tenantId);
      for (const controller of open) controller.abort();
      this.logger.info({ tenantId, streams: open.size }, "closed the streams of a suspended tenant");
    }
  }

  /** Tracks one open stream of the tenant; its signal aborts when the tenant is suspended. */
  track(tenantId: string): { signal: AbortSignal; release(): void } {
    const controller = new AbortController();
    const open = this.streams.get(tenantId) ?? new Set<AbortController>();
    this.streams.set(tenantId, open);
    open.add(controller);
    if (this.suspended.has(tenantId)) controller.abort();
    return {
      signal: controller.signal,
      release: () => {
        const set = this.streams.get(tenantId);
        set?.delete(controller);
        if (set?.size === 0) this.streams.delete(tenantId);
      },
    };
  }

  /** Open streams tracked here (for tests and metrics). */
  get openStreams(): number {
    let n = 0;
    for (const set of this.streams.values()) n += set.size;
    return n;
  }
}

/**
 * Refuses every call of a suspended tenant's operators and agents (after the identity
 * interceptor resolved who they are), and ends their server streams — ControlStream,
 * WatchAgents, WatchRollout — with TENANT_SUSPENDED the moment the suspension reaches this
 * replica: the stream's response fails, which aborts the handler's signal, which unregisters
 * the stream wherever it was registered.
 */
export function tenantGateInterceptor(gate: TenantGate): Interceptor {
  return (next) => async (req) => {
    const tenantId = tenantOfPrincipal(req.contextValues.get(principalKey));
    if (tenantId === undefined) return next(req);
    gate.assertActive(tenantId);
    if (req.method.methodKind === "unary" || req.method.methodKind === "client_streaming") return next(req);
    const tracked = gate.track(tenantId);
    let res: StreamResponse;
    try {
      res = (await next(req)) as StreamResponse;
    } catch (err) {
      tracked.release();
      throw err;
    }
    return { ...res, message: fenced(res.message, tracked) } as StreamResponse;
  };
}

async function* fenced<T>(messages: AsyncIterable<T>, tracked: { signal: AbortSignal; release(): void }): AsyncGenerator<T> {
  const it = messages[Symbol.asyncIterator]();
  const suspended = new Promise<never>((_, reject) => {
    const fail = () => reject(tenantSuspendedError());
    if (tracked.signal.aborted) fail();
    else tracked.signal.addEventListener("abort", fail, { once: true });
  });
  suspended.catch(() => {});
  let finished = false;
  try {
    for (;;) {
      const r = await Promise.race([it.next(), suspended]);
      if (r.done) {
        finished = true;
        return;
      }
      yield r.value;
    }
  } finally {
    tracked.release();
    // Ended early (suspended, or the client went away): let the handler's generator finish too.
    if (!finished) void it.return?.(undefined)?.catch(() => {});
  }
}
