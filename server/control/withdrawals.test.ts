import { describe, expect, it } from "vitest";
import { AgentConnection, type Outgoing, QueueSink } from "./connection.js";
import { Withdrawals } from "./withdrawals.js";

const directive = (sequence: number): Outgoing => ({ kind: { case: "command", value: { sequence: BigInt(sequence) } } });
const origin = (ref: string, sequence: number) => ({ tenantId: "t1", kind: "rollout", ref, sequence });

describe("Withdrawals", () => {
  it("drops a withdrawn ref's messages up to the withdrawn sequence only: a re-issue, another ref, tenant or an untagged message stays", () => {
    const w = new Withdrawals();
    const old = directive(5);
    const reissued = directive(9);
    const other = directive(4);
    const untagged = directive(3);
    w.tag(old, origin("r1", 5));
    w.tag(reissued, origin("r1", 9));
    w.tag(other, origin("r2", 4));
    expect(w.drop(old)).toBe(false);
    w.record({ tenantId: "t1", kind: "rollout", ref: "r1", throughSequence: 7 });
    expect([old, reissued, other, untagged].map(w.drop)).toEqual([true, false, false, false]);
    expect(w.isWithdrawn({ ...origin("r1", 5), tenantId: "t2" })).toBe(false);
    // A late duplicate of an older notice does not lower the bound.
    w.record({ tenantId: "t1", kind: "rollout", ref: "r1", throughSequence: 2 });
    expect(w.drop(old)).toBe(true);
  });

  it("remembers a bounded number of withdrawals, forgetting the oldest", () => {
    const w = new Withdrawals();
    for (let i = 0; i <= 1024; i++) w.record({ tenantId: "t1", kind: "rollout", ref: `r${i}`, throughSequence: 10 });
    expect(w.isWithdrawn(origin("r0", 1))).toBe(false);
    expect(w.isWithdrawn(origin("r1", 1))).toBe(true);
    expect(w.isWithdrawn(origin("r1024", 1))).toBe(true);
  });
});

describe("withdrawing from a stream", () => {
  it("removes selected messages from the held list and from a QueueSink's queue, keeping the order of the rest", async () => {
    const sink = new QueueSink();
    const conn = new AgentConnection("a1", "t1", "s1", Date.now() + 60_000, Date.now(), Date.now() + 60_000, sink);
    const [one, two, three] = [directive(1), directive(2), directive(3)];
    conn.send(one);
    conn.send(two);
    expect(conn.withdraw((m) => m === one)).toBe(1);
    conn.start({ kind: { case: "welcome", value: {} } });
    conn.send(three);
    expect(sink.size).toBe(3);
    expect(conn.withdraw((m) => m === three)).toBe(1);
    sink.end();
    const out: Outgoing[] = [];
    for await (const m of sink.messages()) out.push(m);
    expect(out.map((m) => (m.kind?.case === "command" ? Number(m.kind.value.sequence) : m.kind?.case))).toEqual(["welcome", 2]);
  });
});
