import { create, type DescMessage, getOption } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { RE2JS } from "@bufbuild/re2";
import { describe, expect, it } from "vitest";
import { UploadTelemetryRequestSchema } from "../../gen/agentgateway/v1/ingest_pb.js";
import { SERVED_FILES } from "../app/routes.js";
import { linearAsRegExp, patternMatcher, requestValidator } from "./request-validator.js";

/** Every `string.pattern` rule in the messages of the served protos. */
function servedPatterns(): string[] {
  const patterns = new Set<string>();
  const seen = new Set<string>();
  const visit = (message: DescMessage) => {
    if (seen.has(message.typeName)) return;
    seen.add(message.typeName);
    for (const field of message.fields) {
      const rules = getOption(field, fieldRules);
      const candidates = [rules.type, rules.type.case === "map" ? rules.type.value.keys?.type : undefined, rules.type.case === "map" ? rules.type.value.values?.type : undefined, rules.type.case === "repeated" ? rules.type.value.items?.type : undefined];
      for (const t of candidates) if (t?.case === "string" && t.value.pattern) patterns.add(t.value.pattern);
      if (field.message) visit(field.message);
    }
    for (const nested of message.nestedMessages) visit(nested);
  };
  for (const file of SERVED_FILES) for (const m of file.messages) visit(m);
  return [...patterns];
}

const SAMPLES = ["", "a", "A", "_", "9", "cpu.utilization", "a/b:c-d_e.f", "a b", "a\n", "\na", "-a", "a-", "a.", ".a", "é", "aé", "a\u{1F600}", "a$", "^a", "a".repeat(300), "A0._-+/:"];

describe("request validator", () => {
  it("finds the patterns of the served protos, and the platform engine takes every one", () => {
    const patterns = servedPatterns();
    expect(patterns.length).toBeGreaterThanOrEqual(5);
    for (const p of patterns) expect({ p, linear: linearAsRegExp(p) }).toEqual({ p, linear: true });
  });

  it("matches exactly as RE2 does on every served pattern", () => {
    const match = patternMatcher(() => {});
    for (const p of servedPatterns()) {
      const re2 = RE2JS.compile(p);
      for (const s of SAMPLES) expect({ p, s, matched: match(p, s) }).toEqual({ p, s, matched: re2.test(s) });
    }
  });

  it("leaves looping groups, backreferences, shorthand classes and lookaround to RE2", () => {
    for (const p of ["^(a+)+$", "^(ab)*$", "^(a|b){2,}$", "(a)\\1", "^\\d+$", "^(?=a)", "^a*?$", "^a**$", "^(?P<x>a)$"]) {
      expect({ p, linear: linearAsRegExp(p) }).toEqual({ p, linear: false });
    }
    let refused = "";
    const match = patternMatcher((p) => {
      refused = p;
    });
    expect(() => match("^(a+)+$", "aaaa")).toThrow();
    expect(refused).toBe("^(a+)+$");
  });

  it("gives the same verdicts and violations as protovalidate's default validator", () => {
    const fast = requestValidator();
    const standard = createValidator();
    const point = (name: string) => ({ id: "p1", name, value: 1, observedAt: timestampFromMs(0), labels: { k: "v" } });
    for (const name of ["cpu.utilization", "bad name", "9starts-with-digit", "", "ok/with:colon-dash_"]) {
      const message = create(UploadTelemetryRequestSchema, { points: [point(name)] });
      const a = fast.validate(UploadTelemetryRequestSchema, message);
      const b = standard.validate(UploadTelemetryRequestSchema, message);
      expect({ name, kind: a.kind, violations: a.violations?.map((v) => v.toString()) }).toEqual({ name, kind: b.kind, violations: b.violations?.map((v) => v.toString()) });
    }
  });
});
