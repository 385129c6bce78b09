import { create } from "@bufbuild/protobuf";
import { DurationSchema, StructSchema, TimestampSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { AuditEventSchema } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { UploadEventsRequestSchema } from "../../gen/agentgateway/v1/ingest_pb.js";
import { findUnstorable } from "./storable.js";

describe("findUnstorable", () => {
  it("accepts ordinary values", () => {
    const req = create(UploadEventsRequestSchema, { events: [{ id: "e1", type: "boot", message: "żółw 🐢", attributes: { k: "v" } }] });
    expect(findUnstorable(UploadEventsRequestSchema, req)).toBeUndefined();
  });

  it("names the path of a NUL in a list element, a map value and a map key (without echoing the key)", () => {
    const inList = create(UploadEventsRequestSchema, { events: [{ id: "ok" }, { id: "e", message: "a\u0000b" }] });
    expect(findUnstorable(UploadEventsRequestSchema, inList)).toEqual({ path: "events[1].message", problem: "must not contain NUL characters" });
    const inValue = create(UploadEventsRequestSchema, { events: [{ id: "e", attributes: { k: "\u0000" } }] });
    expect(findUnstorable(UploadEventsRequestSchema, inValue)?.path).toBe('events[0].attributes["k"]');
    const inKey = create(UploadEventsRequestSchema, { events: [{ id: "e", attributes: { "secret\u0000": "v" } }] });
    const found = findUnstorable(UploadEventsRequestSchema, inKey);
    expect(found?.path).toBe("events[0].attributes (a key)");
    expect(JSON.stringify(found)).not.toContain("secret");
  });

  it("refuses an unpaired surrogate (a JSON request can carry one; it has no UTF-8 form), accepts a paired one", () => {
    const lone = create(UploadEventsRequestSchema, { events: [{ id: "e", type: "a\ud800b" }] });
    expect(findUnstorable(UploadEventsRequestSchema, lone)).toEqual({ path: "events[0].type", problem: "must be valid Unicode (no unpaired surrogates)" });
    const low = create(UploadEventsRequestSchema, { events: [{ id: "e", attributes: { k: "\udc00" } }] });
    expect(findUnstorable(UploadEventsRequestSchema, low)?.path).toBe('events[0].attributes["k"]');
    const paired = create(UploadEventsRequestSchema, { events: [{ id: "e", message: "\ud83d\udc22" }] });
    expect(findUnstorable(UploadEventsRequestSchema, paired)).toBeUndefined();
  });

  it("finds a NUL deep inside a google.protobuf.Struct (jsonb cannot hold it)", () => {
    const data = create(StructSchema, {
      fields: { a: create(ValueSchema, { kind: { case: "structValue", value: create(StructSchema, { fields: { b: create(ValueSchema, { kind: { case: "stringValue", value: "x\u0000" } }) } }) } }) },
    });
    const event = create(AuditEventSchema, {});
    (event as unknown as { data: unknown }).data = { a: { b: "x\u0000" } };
    expect(findUnstorable(AuditEventSchema, event)?.problem).toBe("must not contain NUL characters");
    expect(findUnstorable(StructSchema, data)?.path).toContain("string_value");
  });

  it("refuses non-finite numbers, unsigned values past PostgreSQL's signed ranges and unknown enum values", () => {
    const nan = create(StructSchema, { fields: { n: create(ValueSchema, { kind: { case: "numberValue", value: Number.NaN } }) } });
    expect(findUnstorable(StructSchema, nan)?.problem).toBe("must be a finite number");
    const event = create(AuditEventSchema, { seq: 2n ** 63n });
    expect(findUnstorable(AuditEventSchema, event)).toEqual({ path: "seq", problem: `must be at most ${2n ** 63n - 1n}` });
    expect(findUnstorable(AuditEventSchema, create(AuditEventSchema, { seq: 2n ** 63n - 1n }))).toBeUndefined();
    const badEnum = create(UploadEventsRequestSchema, { events: [{ id: "e", severity: 99 as never }] });
    expect(findUnstorable(UploadEventsRequestSchema, badEnum)?.path).toBe("events[0].severity");
  });

  it("keeps timestamps and durations in the well-known types' ranges", () => {
    expect(findUnstorable(TimestampSchema, create(TimestampSchema, { seconds: 253_402_300_799n }))).toBeUndefined();
    expect(findUnstorable(TimestampSchema, create(TimestampSchema, { seconds: 253_402_300_800n }))?.problem).toMatch(/9999/);
    expect(findUnstorable(TimestampSchema, create(TimestampSchema, { seconds: 0n, nanos: -1 }))?.problem).toMatch(/nanos/);
    expect(findUnstorable(DurationSchema, create(DurationSchema, { seconds: 1n, nanos: -5 }))?.problem).toMatch(/sign/);
    expect(findUnstorable(DurationSchema, create(DurationSchema, { seconds: 10n ** 15n }))?.problem).toMatch(/10000 years/);
  });

  it("refuses a Struct nested deeper than any request needs", () => {
    let value = create(ValueSchema, { kind: { case: "stringValue", value: "leaf" } });
    for (let i = 0; i < 40; i++) value = create(ValueSchema, { kind: { case: "listValue", value: { values: [value] } } });
    const deep = create(StructSchema, { fields: { d: value } });
    expect(findUnstorable(StructSchema, deep)?.problem).toMatch(/deeper than/);
  });
});
