import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayClient, handshake, register } from "../agent/lib/direct.js";
import { retryHintMs } from "../agent/lib/errors.js";
import { newState, StateStore } from "../agent/lib/state.js";
import { Supervisor, type SupervisorEvent } from "../agent/lib/supervisor.js";
import { createGatewayTransport } from "../client/transport.js";
import { enrollAgent, mintToken } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { openStream } from "./support/stream.js";

// Admission control for reconnect storms (AGW_MAX_INFLIGHT_HANDSHAKES,
// AGW_MAX_INFLIGHT_STREAM_OPENS): past the cap a call is refused before any database work with
// RESOURCE_EXHAUSTED and a jittered retry hint, and the agent daemon waits at least that long
// and keeps trying. The tests hold the slots themselves, so nothing depends on timing.

let gw: TestGateway;
let root: string;

beforeAll(async () => {
  gw = await startTestGateway({ maxInflightHandshakes: "1", maxInflightStreamOpens: "1", shedRetrySpread: "3s", handshakeRatePerAgent: "1000/s:1000" });
  root = await mkdtemp(join(tmpdir(), "agw-admission-"));
});

afterAll(async () => {
  await gw?.stop();
  await rm(root, { recursive: true, force: true });
});

const admission = () => gw.gateway.context.control.admission;

describe("admission control", () => {
  it("sheds a handshake past the cap with RESOURCE_EXHAUSTED and a retry hint, and admits it once a slot is free", async () => {
    const agent = await enrollAgent(gw);
    const client = gatewayClient(gw.transport);
    const hold = admission().handshakes.enter();
    const shedBefore = admission().handshakes.shed;
    try {
      const err = await handshake(client, agent.registration.agentId, agent.identity).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
      const hint = retryHintMs(err);
      // 1 s plus up to the 3 s spread, announced in whole seconds.
      expect(hint).toBeGreaterThanOrEqual(1000);
      expect(hint).toBeLessThanOrEqual(4000);
      expect(admission().handshakes.shed).toBe(shedBefore + 1);
    } finally {
      hold();
    }
    const session = await handshake(client, agent.registration.agentId, agent.identity);
    expect(session.token).toMatch(/^agws_/);
  });

  it("sheds a ControlStream opening past the cap before it touches the database", async () => {
    const agent = await enrollAgent(gw);
    const client = gatewayClient(gw.transport);
    const hold = admission().streamOpens.enter();
    try {
      const stream = openStream(client, agent.session);
      const err = await stream.ended;
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
      expect(retryHintMs(err)).toBeGreaterThanOrEqual(1000);
      // Refused before hub registration: the agent has no stream here.
      expect(gw.gateway.context.control.size).toBe(0);
    } finally {
      hold();
    }
    const stream = openStream(client, agent.session);
    expect((await stream.next()).kind.case).toBe("welcome");
    stream.close();
    await stream.ended;
  });

  it("the agent daemon waits out the hint and keeps trying until it is admitted (it never gives up)", async () => {
    const hold = admission().streamOpens.enter();
    const holdHandshakes = admission().handshakes.enter();
    const shed0 = admission().streamOpens.shed + admission().handshakes.shed;
    const dir = await mkdtemp(join(root, "agent-"));
    const store = new StateStore(dir);
    await store.init();
    const identity = await store.createIdentity();
    const transport = createGatewayTransport(gw.url, { pins: [] });
    const client = gatewayClient(transport.transport);
    const name = "admission-agent";
    const reg = await register(client, { token: await mintToken(gw), identity, name });
    const state = newState({ server: gw.url, agentId: reg.agentId, tenantId: reg.tenantId, name, labels: {}, verificationCode: reg.verificationCode, tls: { pins: [] }, releaseKeys: [] });
    await store.save(state);
    const events: SupervisorEvent[] = [];
    const supervisor = new Supervisor({
      client,
      identity,
      store,
      state,
      // A tiny backoff of its own: every wait below 1 s comes from honouring the gateway's hint.
      backoff: { initialMs: 20, maxMs: 50, floorMs: 10 },
      healthyAfterMs: 1000,
      hostInfo: () => ({ hostname: "test", os: "linux", arch: "x64", agentVersion: "1.0.0", labels: {} }),
      version: () => "1.0.0",
      commands: { releaseKeys: [], updateTimeoutMs: 10_000, stateDir: dir, installedVersion: async (h, m) => h ?? m },
      logger: pino({ level: process.env.AGW_TEST_LOG_LEVEL ?? "silent" }),
      observer: (e) => events.push(e),
    });
    const result = supervisor.run();
    try {
      // Refused at least twice (the handshake, then a retry), each time waiting ≥ the 1 s hint.
      await until("two refusals", () => (admission().streamOpens.shed + admission().handshakes.shed - shed0 >= 2 ? true : undefined));
      const waits = events.filter((e): e is Extract<SupervisorEvent, { type: "disconnected" }> => e.type === "disconnected").map((e) => e.delayMs);
      expect(waits.length).toBeGreaterThanOrEqual(1);
      for (const w of waits) expect(w).toBeGreaterThanOrEqual(1000);
      expect(events.some((e) => e.type === "connected")).toBe(false);
      holdHandshakes();
      hold();
      await until("connected", () => (events.some((e) => e.type === "connected") ? true : undefined), 30_000);
    } finally {
      holdHandshakes();
      hold();
      await supervisor.stop(500);
      transport.close();
      await result;
    }
  });
});

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
