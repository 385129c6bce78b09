import { describe, expect, it } from "vitest";
import type { AgentRecord } from "./agent-store.js";
import { AgentWatcher, matchesFilter } from "./agent-watch.js";

const agent = (id: string, over: Partial<AgentRecord> = {}): AgentRecord => ({
  id,
  tenantId: "t",
  name: `agent-${id}`,
  identityPublicKey: new Uint8Array(32),
  verificationCode: "ABCD-EFGH",
  state: "ACTIVE",
  labels: { site: "ams" },
  hostLabels: {},
  hostname: "h",
  os: "linux",
  arch: "x64",
  agentVersion: "1.0.0",
  enrollmentTokenId: null,
  createdAt: new Date(0),
  approvedAt: null,
  revokedAt: null,
  revokeReason: null,
  revokedFrom: null,
  lastSeenAt: null,
  reportedStatus: "UNSPECIFIED",
  uptimeSeconds: 0,
  ...over,
});

const noFilter = { states: [], labels: {}, namePrefix: "" };
const signal = new AbortController().signal;

describe("AgentWatcher", () => {
  it("coalesces changes per agent and sends the latest version once", async () => {
    const w = new AgentWatcher("t", noFilter, 100, 500);
    w.offer(agent("1", { agentVersion: "1.0.0" }));
    w.offer(agent("2"));
    w.offer(agent("1", { agentVersion: "2.0.0" }));
    const batch = await w.next(signal, 60_000);
    expect(batch.kind).toBe("changes");
    if (batch.kind !== "changes") return;
    expect(batch.upserts.map((a) => [a.id, a.agentVersion])).toEqual([
      ["2", "1.0.0"],
      ["1", "2.0.0"],
    ]);
  });

  it("turns an agent that left the filter into a removal", async () => {
    const w = new AgentWatcher("t", { ...noFilter, states: ["PENDING_APPROVAL"] }, 100, 500);
    w.offer(agent("1", { state: "ACTIVE" }));
    const batch = await w.next(signal, 60_000);
    expect(batch).toEqual({ kind: "changes", upserts: [], removedIds: ["1"] });
  });

  it("asks a watcher that falls too far behind to resynchronise instead of buffering more", async () => {
    const w = new AgentWatcher("t", noFilter, 2, 500);
    for (const id of ["1", "2", "3"]) w.offer(agent(id));
    expect(await w.next(signal, 60_000)).toEqual({ kind: "resync" });
    // Nothing of the overflowed queue is left behind: the snapshot replaces it.
    w.close();
    expect(await w.next(signal, 60_000)).toEqual({ kind: "closed" });
  });

  it("splits large change sets into batches", async () => {
    const w = new AgentWatcher("t", noFilter, 100, 2);
    for (const id of ["1", "2", "3"]) w.offer(agent(id));
    const first = await w.next(signal, 60_000);
    const second = await w.next(signal, 60_000);
    expect(first.kind === "changes" && first.upserts.length).toBe(2);
    expect(second.kind === "changes" && second.upserts.map((a) => a.id)).toEqual(["3"]);
  });
});

describe("matchesFilter", () => {
  it("matches states, name prefix and every label like ListAgents does", () => {
    const a = agent("1", { name: "probe-7", labels: { site: "ams", tier: "edge" } });
    expect(matchesFilter(a, noFilter)).toBe(true);
    expect(matchesFilter(a, { ...noFilter, states: ["REVOKED"] })).toBe(false);
    expect(matchesFilter(a, { ...noFilter, namePrefix: "probe-" })).toBe(true);
    expect(matchesFilter(a, { ...noFilter, namePrefix: "Probe-" })).toBe(false);
    expect(matchesFilter(a, { ...noFilter, labels: { site: "ams", tier: "edge" } })).toBe(true);
    expect(matchesFilter(a, { ...noFilter, labels: { site: "fra" } })).toBe(false);
  });
});
