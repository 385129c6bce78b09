import { describe, expect, it } from "vitest";
import { MemoryBus } from "./bus.js";
import { decodeMessage, encodeMessage } from "./topics.js";

describe("bus topics on the wire", () => {
  it("keeps the text form earlier versions sent, so mixed-version replicas understand each other", () => {
    expect(encodeMessage("agent_changed", "a1")).toBe("agent_changed|a1");
    expect(encodeMessage("commands_queued", { scope: "all" })).toBe("commands_queued|all");
    expect(encodeMessage("commands_queued", { scope: "tenant", tenantId: "t1" })).toBe("commands_queued|tenant:t1");
    expect(encodeMessage("stream_opened", { agentId: "a1", connectionId: "c1" })).toBe("stream_opened|a1|c1");
    expect(decodeMessage("commands_queued|tenant:t1")).toEqual({ topic: "commands_queued", payload: { scope: "tenant", tenantId: "t1" } });
    expect(decodeMessage("stream_opened|a1|c1")).toEqual({ topic: "stream_opened", payload: { agentId: "a1", connectionId: "c1" } });
    expect(decodeMessage("rollout_changed|r1")).toEqual({ topic: "rollout_changed", payload: "r1" });
    const withdrawn = { tenantId: "t1", kind: "rollout", ref: "r1", throughSequence: 42 };
    expect(encodeMessage("commands_withdrawn", withdrawn)).toBe("commands_withdrawn|t1|rollout|r1|42");
    expect(decodeMessage("commands_withdrawn|t1|rollout|r1|42")).toEqual({ topic: "commands_withdrawn", payload: withdrawn });
  });

  it("drops unknown topics and malformed payloads instead of delivering them", () => {
    for (const text of ["", "|x", "agent_changed|", "nope|a1", "constructor|x", "commands_queued|agent:a1", "commands_queued|tenant:", "stream_opened|a1", "stream_opened||c1", "commands_withdrawn|t1|rollout|r1", "commands_withdrawn|t1|rollout|r1|0", "commands_withdrawn|t1|rollout|r1|x", "commands_withdrawn|t1|rollout|r1|1|2", `agent_changed|${"x".repeat(8000)}`]) {
      expect(decodeMessage(text), text.slice(0, 40)).toBeUndefined();
    }
  });

  it("refuses to publish a payload NOTIFY could not carry", () => {
    expect(() => encodeMessage("agent_changed", "x".repeat(8000))).toThrow(/too long/);
  });
});

describe("MemoryBus", () => {
  it("delivers each topic's payload to that topic's listeners only, and survives a throwing listener", async () => {
    const bus = new MemoryBus();
    const got: unknown[] = [];
    bus.subscribe("commands_queued", () => {
      throw new Error("bad listener");
    });
    const off = bus.subscribe("commands_queued", (queued) => got.push(queued.scope));
    bus.subscribe("stream_opened", (opened) => got.push(opened.connectionId));
    await bus.publish("commands_queued", { scope: "all" });
    await bus.publish("stream_opened", { agentId: "a", connectionId: "c" });
    off();
    await bus.publish("commands_queued", { scope: "all" });
    expect(got).toEqual(["all", "c"]);
    await bus.stop();
    await bus.publish("stream_opened", { agentId: "a", connectionId: "c2" });
    expect(got).toEqual(["all", "c"]);
  });
});
