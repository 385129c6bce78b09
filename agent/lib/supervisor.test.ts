import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createRouterTransport, type ServiceImpl } from "@connectrpc/connect";
import { createWritableIterable } from "@connectrpc/connect/protocol";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AckStatus, type ControlStreamRequest, type ControlStreamResponseSchema, GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { ERROR_DOMAIN, Reason } from "../../client/reasons.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { BackoffOptions } from "./backoff.js";
import { gatewayClient } from "./direct.js";
import { EXIT } from "./errors.js";
import { type EventRecord, Outbox } from "./outbox.js";
import { FILES, newState, StateStore } from "./state.js";
import { Supervisor, type SupervisorEvent } from "./supervisor.js";

type Response = MessageInitShape<typeof ControlStreamResponseSchema>;
type Impl = Partial<ServiceImpl<typeof AgentGatewayService>>;

/** What one fake stream does: push responses; read the agent's requests in order (undefined once the agent ended its side). */
type StreamScript = (io: {
  send: (r: Response) => void;
  requests: ControlStreamRequest[];
  nextRequest: () => Promise<ControlStreamRequest | undefined>;
}) => Promise<void>;

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-supervisor-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const welcome: Response = { kind: { case: "welcome", value: { replicaId: "fake", heartbeatInterval: durationFromMs(60_000) } } };
const goAway = (reason: GoAwayReason, reconnectAfterMs = 0, message = ""): Response => ({
  kind: { case: "goAway", value: { reason, reconnectAfter: durationFromMs(reconnectAfterMs), message } },
});

/** A fake gateway: handshakes succeed unless overridden, each ControlStream runs the next script. */
function fakeGateway(scripts: StreamScript[], overrides: Impl = {}) {
  const calls = { handshakes: 0, heartbeats: 0, streams: 0, hellos: [] as bigint[] };
  let nextScript = 0;
  const impl: Impl = {
    async beginAuthHandshake() {
      calls.handshakes++;
      return { challengeId: crypto.randomUUID(), nonce: new Uint8Array(32) };
    },
    async completeAuthHandshake() {
      return { sessionToken: `agws_fake_${calls.handshakes}`, expiresAt: timestampFromMs(Date.now() + 3_600_000), heartbeatInterval: durationFromMs(60_000) };
    },
    async uploadHeartbeat() {
      calls.heartbeats++;
      return {};
    },
    async *controlStream(requests) {
      calls.streams++;
      const script = scripts[Math.min(nextScript++, scripts.length - 1)];
      const seen: ControlStreamRequest[] = [];
      const incoming = createWritableIterable<ControlStreamRequest>();
      const reader = incoming[Symbol.asyncIterator]();
      void (async () => {
        try {
          for await (const r of requests) {
            if (r.kind.case === "hello") calls.hellos.push(r.kind.value.lastAppliedSequence);
            seen.push(r);
            void incoming.write(r).catch(() => {});
          }
        } catch {
          // the agent went away
        }
        incoming.close();
      })();
      const out = createWritableIterable<Response>();
      const finished = (script ?? (async () => {}))({
        send: (r) => void out.write(r).catch(() => {}),
        requests: seen,
        nextRequest: async () => {
          const next = await reader.next();
          return next.done ? undefined : next.value;
        },
      }).finally(() => out.close());
      yield* out;
      await finished;
    },
    ...overrides,
  };
  const transport = createRouterTransport((router) => router.service(AgentGatewayService, impl));
  return { client: gatewayClient(transport), calls };
}

interface Harness {
  supervisor: Supervisor;
  store: StateStore;
  events: SupervisorEvent[];
  delays: number[];
  outbox?: Outbox;
}

async function harness(
  gateway: ReturnType<typeof fakeGateway>,
  options: { healthyAfterMs?: number; outbox?: boolean; stopAfterDelays?: number; backoff?: BackoffOptions } = {},
): Promise<Harness> {
  const store = new StateStore(join(dir, "state"));
  await store.init();
  const identity = await store.createIdentity();
  const state = newState({
    server: "http://127.0.0.1:1",
    agentId: crypto.randomUUID(),
    tenantId: crypto.randomUUID(),
    name: "t",
    labels: {},
    verificationCode: "X",
    tls: { pins: [] },
    releaseKeys: [],
  });
  await store.save(state);
  const outbox = options.outbox ? await Outbox.open(store.path(FILES.outbox)) : undefined;
  const events: SupervisorEvent[] = [];
  const delays: number[] = [];
  const h: Harness = { supervisor: undefined as unknown as Supervisor, store, events, delays, ...(outbox ? { outbox } : {}) };
  h.supervisor = new Supervisor({
    client: gateway.client,
    identity,
    store,
    state,
    ...(outbox ? { outbox } : {}),
    healthyAfterMs: options.healthyAfterMs ?? 30_000,
    ...(options.backoff ? { backoff: options.backoff } : {}),
    hostInfo: () => ({ hostname: "h", os: "linux", arch: "x64", agentVersion: "1.0.0", labels: {} }),
    version: () => "1.0.0",
    commands: { releaseKeys: [], updateTimeoutMs: 1000, stateDir: store.dir, installedVersion: async (_h, v) => v },
    logger: pino({ level: "silent" }),
    observer: (e) => events.push(e),
    random: () => 0.5,
    // Record the wait instead of sleeping; stop once enough waits were seen.
    sleep: async (ms) => {
      delays.push(ms);
      if (delays.length >= (options.stopAfterDelays ?? 1)) void h.supervisor.stop(100);
      await new Promise((r) => setTimeout(r, 1));
    },
  });
  return h;
}

describe("Supervisor: waiting between attempts", () => {
  it("waits at least a RESOURCE_EXHAUSTED retry-after hint, with jitter on top", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("handshake rate limit exceeded: retry after 3 s", Code.ResourceExhausted, { "retry-after": "3" });
      },
    });
    const h = await harness(gw);
    expect((await h.supervisor.run()).exitCode).toBe(EXIT.OK);
    expect(h.delays[0]).toBe(3000 + 100 + 0.5 * 900);
  });

  it("uses the RetryInfo detail when there is no header", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("rate limit exceeded", Code.ResourceExhausted, undefined, [
          { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(7000) } },
        ]);
      },
    });
    const h = await harness(gw);
    await h.supervisor.run();
    expect(h.delays[0]).toBeGreaterThanOrEqual(7000);
  });

  it("backs off exponentially while attempts keep failing, up to the cap", async () => {
    const gw = fakeGateway([
      async () => {
        throw new ConnectError("connection refused", Code.Unavailable);
      },
    ]);
    const h = await harness(gw, { stopAfterDelays: 7 });
    await h.supervisor.run();
    // random() = 0.5: the middle of [100 ms, min(30 s, 1 s * 2^n)].
    expect(h.delays).toEqual([550, 1050, 2050, 4050, 8050, 15_050, 15_050]);
  });

  it("resets the backoff only after a connection stayed healthy", async () => {
    const short: StreamScript = async ({ send }) => send(welcome);
    const long: StreamScript = async ({ send }) => {
      send(welcome);
      await new Promise((r) => setTimeout(r, 150));
    };
    const gw = fakeGateway([short, short, short, long, short]);
    const h = await harness(gw, { healthyAfterMs: 100, stopAfterDelays: 5 });
    await h.supervisor.run();
    expect(h.delays).toEqual([550, 1050, 2050, 550, 1050]);
  });

  it("reconnects after exactly the GoAway's reconnect_after when the connection was healthy", async () => {
    const gw = fakeGateway([
      async ({ send }) => {
        send(welcome);
        await new Promise((r) => setTimeout(r, 30));
        send(goAway(GoAwayReason.DRAIN, 1234, "draining"));
      },
    ]);
    const h = await harness(gw, { healthyAfterMs: 10 });
    await h.supervisor.run();
    expect(h.delays).toEqual([1234]);
  });

  it("backs off at the cap when another process holds the identity (SUPERSEDED)", async () => {
    const gw = fakeGateway([
      async ({ send }) => {
        send(welcome);
        send(goAway(GoAwayReason.SUPERSEDED));
      },
    ]);
    const h = await harness(gw);
    await h.supervisor.run();
    expect(h.delays[0]).toBeGreaterThanOrEqual(30_000);
  });

  it("handshakes again after SESSION_ENDED, and keeps the session across plain reconnects", async () => {
    const gw = fakeGateway([
      async ({ send }) => {
        send(welcome);
        send(goAway(GoAwayReason.DRAIN, 10));
      },
      async ({ send }) => {
        send(welcome);
        send(goAway(GoAwayReason.SESSION_ENDED));
      },
      async ({ send }) => send(welcome),
    ]);
    const h = await harness(gw, { stopAfterDelays: 3 });
    await h.supervisor.run();
    expect(gw.calls.streams).toBe(3);
    expect(gw.calls.handshakes).toBe(2);
  });
});

describe("Supervisor: revocation", () => {
  it("stops for good on GoAway REVOKED: exit 78, state marked, session wiped, no restart", async () => {
    const gw = fakeGateway([
      async ({ send }) => {
        send(welcome);
        send(goAway(GoAwayReason.REVOKED, 0, "key leaked"));
      },
    ]);
    const h = await harness(gw);
    const result = await h.supervisor.run();
    expect(result).toEqual({ exitCode: EXIT.REVOKED, reason: "key leaked" });
    const state = await h.store.load();
    expect(state?.revoked?.reason).toBe("key leaked");
    expect(await h.store.loadSession()).toBeUndefined();
    expect(h.events.some((e) => e.type === "revoked")).toBe(true);
    // A new supervisor on the revoked state refuses without a single call.
    const before = { ...gw.calls };
    const again = new Supervisor({
      client: gw.client,
      identity: generateKeyPair(),
      store: h.store,
      state: state ?? newState({} as never),
      hostInfo: () => ({}),
      version: () => "1",
      commands: { releaseKeys: [], updateTimeoutMs: 1, stateDir: dir, installedVersion: async (_h, v) => v },
      logger: pino({ level: "silent" }),
    });
    expect((await again.run()).exitCode).toBe(EXIT.REVOKED);
    expect(gw.calls.handshakes).toBe(before.handshakes);
    expect(gw.calls.streams).toBe(before.streams);
  });

  it("treats PERMISSION_DENIED from any RPC as revocation, keeping the operator's reason from the GoAway", async () => {
    const gw = fakeGateway(
      [
        async ({ send }) => {
          send(welcome);
          await new Promise((r) => setTimeout(r, 200));
          send(goAway(GoAwayReason.REVOKED, 0, "decommissioned by ops"));
        },
      ],
      {
        async uploadHeartbeat() {
          throw new ConnectError("this agent is revoked", Code.PermissionDenied);
        },
      },
    );
    const h = await harness(gw);
    const result = await h.supervisor.run();
    expect(result).toEqual({ exitCode: EXIT.REVOKED, reason: "decommissioned by ops" });
  });

  it("treats PERMISSION_DENIED on the handshake as revocation", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("this agent is revoked", Code.PermissionDenied);
      },
    });
    const h = await harness(gw);
    expect((await h.supervisor.run()).exitCode).toBe(EXIT.REVOKED);
    expect((await h.store.load())?.revoked).toBeDefined();
  });

  it("exits 79 when the registration was rejected or retired", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("this agent was retired: enroll again with a new token", Code.FailedPrecondition, undefined, [
          { desc: ErrorInfoSchema, value: { reason: Reason.AGENT_RETIRED, domain: ERROR_DOMAIN } },
        ]);
      },
    });
    const h = await harness(gw);
    expect((await h.supervisor.run()).exitCode).toBe(EXIT.IDENTITY_UNUSABLE);
  });
});

describe("Supervisor: commands and uploads", () => {
  it("splits a batch the gateway refuses as too large (RESOURCE_EXHAUSTED without a retry hint)", async () => {
    const batches: number[] = [];
    let release: () => void = () => {};
    const allIn = new Promise<void>((resolve) => {
      release = resolve;
    });
    const gw = fakeGateway(
      [
        async ({ send }) => {
          send(welcome);
          await allIn;
        },
      ],
      {
        async uploadEvents(req) {
          if (req.events.length > 2) throw new ConnectError("message size is larger than configured readMaxBytes", Code.ResourceExhausted);
          batches.push(req.events.length);
          if (batches.reduce((a, b) => a + b, 0) >= 8) release();
          return { accepted: req.events.length, duplicates: 0 };
        },
      },
    );
    const h = await harness(gw, { outbox: true });
    const ev = (message: string): EventRecord => ({ id: crypto.randomUUID(), type: "t.e", severity: EventSeverity.INFO, message, attributes: {}, s: 1, n: 0 });
    await h.outbox?.append(
      "events",
      Array.from({ length: 8 }, (_, i) => ev(String(i))),
    );
    const running = h.supervisor.run();
    await allIn;
    await h.supervisor.stop(100);
    await running;
    expect(batches).toEqual([2, 2, 2, 2]);
    expect(h.outbox?.stats().files).toBe(0);
  });

  it("persists the applied sequence before acking, and says so in the next hello", async () => {
    let onDiskAtAck: string | undefined;
    const statePath = join(dir, "state", FILES.state);
    const gw = fakeGateway([
      async ({ send, nextRequest }) => {
        send(welcome);
        send({
          kind: {
            case: "command",
            value: {
              sequence: 5n,
              commandId: crypto.randomUUID(),
              payload: { case: "peerRevoked", value: { agentId: "peer", identityPublicKey: new Uint8Array(32) } },
            },
          },
        });
        for (;;) {
          const r = await nextRequest();
          if (!r) return;
          if (r.kind.case === "ack") {
            expect(r.kind.value).toMatchObject({ sequence: 5n, status: AckStatus.OK });
            onDiskAtAck = (JSON.parse(readFileSync(statePath, "utf8")) as { lastAppliedSequence: string }).lastAppliedSequence;
            send(goAway(GoAwayReason.DRAIN, 1));
            return;
          }
        }
      },
      async ({ send }) => send(welcome),
    ]);
    const h = await harness(gw, { stopAfterDelays: 2 });
    await h.supervisor.run();
    expect(onDiskAtAck).toBe("5");
    expect(gw.calls.hellos).toEqual([0n, 5n]);
    expect((await h.store.load())?.revokedPeers[0]?.agentId).toBe("peer");
  });

  it("answers pings with the same nonce", async () => {
    let pong: bigint | undefined;
    const gw = fakeGateway([
      async ({ send, nextRequest }) => {
        send(welcome);
        send({ kind: { case: "ping", value: { nonce: 42n } } });
        for (;;) {
          const r = await nextRequest();
          if (!r) return;
          if (r.kind.case === "pong") {
            pong = r.kind.value.nonce;
            return;
          }
        }
      },
    ]);
    const h = await harness(gw);
    await h.supervisor.run();
    expect(pong).toBe(42n);
  });

  it("retries failed uploads with the agent's one backoff configuration (--backoff-*)", async () => {
    const gw = fakeGateway(
      [
        async ({ send, nextRequest }) => {
          send(welcome);
          while (await nextRequest()) {}
        },
      ],
      {
        async uploadEvents() {
          throw new ConnectError("database unavailable", Code.Unavailable);
        },
      },
    );
    const h = await harness(gw, { outbox: true, backoff: { initialMs: 200, maxMs: 400, floorMs: 0 } });
    await h.outbox?.append("events", [{ id: crypto.randomUUID(), type: "t.e", severity: EventSeverity.INFO, message: "a", attributes: {}, s: 1, n: 0 }]);
    await h.supervisor.run();
    // random() = 0.5 in [0, 200 ms]; the built-in 1 s / 100 ms defaults would give 550.
    expect(h.delays[0]).toBe(100);
    expect(h.outbox?.stats().events).toBe(1);
  });

  it("uploads the outbox in order, retries failures with the same ids, drops only items the gateway calls invalid", async () => {
    const received: string[] = [];
    let failures = 1;
    let release: () => void = () => {};
    const allIn = new Promise<void>((resolve) => {
      release = resolve;
    });
    const gw = fakeGateway(
      [
        async ({ send }) => {
          send(welcome);
          await allIn;
        },
      ],
      {
        async uploadEvents(req) {
          if (failures-- > 0) throw new ConnectError("database unavailable", Code.Unavailable);
          if (req.events.some((e) => e.message === "bad")) throw new ConnectError("events[0].type: bad", Code.InvalidArgument);
          for (const e of req.events) received.push(e.type === "agent.upload.rejected" ? "rejected-report" : e.message);
          if (received.includes("rejected-report")) release();
          return { accepted: req.events.length, duplicates: 0 };
        },
      },
    );
    const h = await harness(gw, { outbox: true });
    const ev = (message: string): EventRecord => ({ id: crypto.randomUUID(), type: "t.e", severity: EventSeverity.INFO, message, attributes: {}, s: 1, n: 0 });
    await h.outbox?.append("events", ["a", "b", "bad", "c"].map(ev));
    await h.outbox?.append("events", [ev("d")]);
    const running = h.supervisor.run();
    await allIn;
    await h.supervisor.stop(100);
    await running;
    expect(received).toEqual(["a", "b", "c", "d", "rejected-report"]);
    expect(h.outbox?.stats().files).toBe(0);
  });
});
