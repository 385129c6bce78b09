import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { ERROR_DOMAIN, Reason } from "../../client/reasons.js";
import { EXIT } from "./errors.js";
import { newState } from "./state.js";
import { Supervisor } from "./supervisor.js";
import { fakeGateway, goAway, harness, type StreamScript, welcome } from "./supervisor-fixture.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-supervisor-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("Supervisor: waiting between attempts", () => {
  it("waits at least a RESOURCE_EXHAUSTED retry-after hint, with jitter on top", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("handshake rate limit exceeded: retry after 3 s", Code.ResourceExhausted, { "retry-after": "3" });
      },
    });
    const h = await harness(dir, gw);
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
    const h = await harness(dir, gw);
    await h.supervisor.run();
    expect(h.delays[0]).toBeGreaterThanOrEqual(7000);
  });

  it("backs off exponentially while attempts keep failing, up to the cap", async () => {
    const gw = fakeGateway([
      async () => {
        throw new ConnectError("connection refused", Code.Unavailable);
      },
    ]);
    const h = await harness(dir, gw, { stopAfterDelays: 7 });
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
    const h = await harness(dir, gw, { healthyAfterMs: 100, stopAfterDelays: 5 });
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
    const h = await harness(dir, gw, { healthyAfterMs: 10 });
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
    const h = await harness(dir, gw);
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
    const h = await harness(dir, gw, { stopAfterDelays: 3 });
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
    const h = await harness(dir, gw);
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
    const h = await harness(dir, gw);
    const result = await h.supervisor.run();
    expect(result).toEqual({ exitCode: EXIT.REVOKED, reason: "decommissioned by ops" });
  });

  it("treats PERMISSION_DENIED on the handshake as revocation", async () => {
    const gw = fakeGateway([], {
      async beginAuthHandshake() {
        throw new ConnectError("this agent is revoked", Code.PermissionDenied);
      },
    });
    const h = await harness(dir, gw);
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
    const h = await harness(dir, gw);
    expect((await h.supervisor.run()).exitCode).toBe(EXIT.IDENTITY_UNUSABLE);
  });
});
