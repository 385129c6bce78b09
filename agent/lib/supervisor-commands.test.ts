import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AckStatus, GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { EventRecord } from "./outbox.js";
import { FILES } from "./state.js";
import { fakeGateway, goAway, harness, welcome } from "./supervisor-fixture.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-supervisor-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
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
    const h = await harness(dir, gw, { outbox: true });
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
    const h = await harness(dir, gw, { stopAfterDelays: 2 });
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
    const h = await harness(dir, gw);
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
    const h = await harness(dir, gw, { outbox: true, backoff: { initialMs: 200, maxMs: 400, floorMs: 0 } });
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
    const h = await harness(dir, gw, { outbox: true });
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
