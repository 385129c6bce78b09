import { describe, expect, it } from "vitest";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { answerLine, parseLocalEvent } from "./local-event.js";
import type { EventRecord } from "./outbox.js";

describe("parseLocalEvent", () => {
  it("accepts the documented line format", () => {
    const r = parseLocalEvent({
      type: "backup.finished",
      severity: "warning",
      message: "m",
      attributes: { n: 3, ok: true },
      payload: "hi",
      occurred_at: "2026-01-02T03:04:05.678Z",
      id: "abc",
    }) as EventRecord;
    expect(r).toMatchObject({
      id: "abc",
      type: "backup.finished",
      severity: EventSeverity.WARNING,
      attributes: { n: "3", ok: "true" },
      payload: Buffer.from("hi").toString("base64"),
    });
    expect(new Date(r.s * 1000 + r.n / 1e6).toISOString()).toBe("2026-01-02T03:04:05.678Z");
  });

  it("explains what is wrong instead of guessing", () => {
    expect(parseLocalEvent({})).toMatch(/^type/);
    expect(parseLocalEvent({ type: "9bad" })).toMatch(/^type/);
    expect(parseLocalEvent({ type: "a", severity: "loud" })).toMatch(/^severity/);
    expect(parseLocalEvent({ type: "a", message: "x".repeat(4097) })).toMatch(/^message/);
    expect(parseLocalEvent({ type: "a", payload_base64: Buffer.alloc(1024 * 1024 + 1).toString("base64") })).toMatch(/1 MiB/);
    expect(parseLocalEvent({ type: "a", occurred_at: "yesterday" })).toMatch(/^occurred_at/);
    expect(parseLocalEvent([1])).toMatch(/object/);
  });
});

describe("answerLine", () => {
  it("writes the documented answer and keeps the internal retry flag off the wire", () => {
    expect(answerLine({ ok: true, id: "x" })).toBe('{"ok":true,"id":"x"}');
    expect(answerLine({ ok: false, error: "the agent could not store the event; retry", retry: true })).toBe(
      '{"ok":false,"error":"the agent could not store the event; retry"}',
    );
  });
});
