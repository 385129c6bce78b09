import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toJsonString } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { RolloutSchema, RolloutState, WaveState } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { signReleaseManifest } from "../release.js";
import { bar, progressLine } from "./rollout-view.js";
import { parseWave, specFrom } from "./rollouts.js";

const dir = mkdtempSync(join(tmpdir(), "agwctl-rollouts-"));
const manifestFile = join(dir, "m.json");
const signed = signReleaseManifest(
  { version: "2.0.0", artifactUrl: "https://r.invalid/a", artifactSha256: new Uint8Array(32), artifactSize: 1n, notes: "" },
  generateKeyPair().privateKey,
);
writeFileSync(manifestFile, toJsonString(SignedReleaseManifestSchema, signed));

describe("--wave", () => {
  it("is NAME=PERCENT or NAME:labels", () => {
    expect(parseWave("canary=5")).toEqual({ name: "canary", cumulativePercent: 5 });
    expect(parseWave("eu:region=eu,tier=web")).toEqual({ name: "eu", labelSelector: { region: "eu", tier: "web" } });
    expect(() => parseWave("canary=101")).toThrow(/--wave must be NAME=PERCENT/);
    expect(() => parseWave("canary")).toThrow(/--wave must be/);
    expect(() => parseWave("eu:Region=eu")).toThrow(/--wave eu:Region=eu: key "Region"/);
  });
});

describe("the rollout spec", () => {
  it("comes from the manifest file and the flags, which apply budget and window to every wave", () => {
    const spec = specFrom({
      manifest: manifestFile,
      wave: ["canary=10", "rest=100"],
      target: ["site=ams"],
      targetHost: ["os=linux"],
      failureBudget: "2",
      verifyWindow: "5m",
      autoAdvanceAfter: "1h",
    });
    expect(spec.manifest?.signature).toEqual(signed.signature);
    expect(spec.targetSelector).toEqual({ site: "ams" });
    expect(spec.targetHostSelector).toEqual({ os: "linux" });
    expect(spec.waves.map((w) => [w.name, w.cumulativePercent, w.failureBudget, w.verifyWindow && durationMs(w.verifyWindow)])).toEqual([
      ["canary", 10, 2, 300_000],
      ["rest", 100, 2, 300_000],
    ]);
    expect(spec.autoAdvanceAfter && durationMs(spec.autoAdvanceAfter)).toBe(3_600_000);
  });

  it("takes a whole RolloutSpec file, with flags winning", () => {
    const specFile = join(dir, "spec.json");
    writeFileSync(specFile, JSON.stringify({ targetSelector: { site: "fra" }, waves: [{ name: "all", cumulativePercent: 100 }] }));
    const spec = specFrom({ spec: specFile, manifest: manifestFile, target: ["site=ams"] });
    expect(spec.targetSelector).toEqual({ site: "ams" });
    expect(spec.waves.map((w) => w.name)).toEqual(["all"]);
  });

  it("needs a manifest, and says which file is not what", () => {
    expect(() => specFrom({})).toThrow(/--manifest FILE/);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, '{"manifest": 7}');
    expect(() => specFrom({ manifest: bad })).toThrow(/bad\.json is not a SignedReleaseManifest in protobuf JSON/);
    expect(() => specFrom({ manifest: join(dir, "missing.json") })).toThrow(/cannot read SignedReleaseManifest/);
  });
});

describe("watch progress", () => {
  const rollout = create(RolloutSchema, {
    targetVersion: "2.0.0",
    state: RolloutState.RUNNING,
    currentWave: 0,
    waves: [
      { index: 0, name: "canary", state: WaveState.IN_PROGRESS, memberIds: ["a", "b", "c", "d"], succeeded: 2, applying: 1, pending: 0, failed: 1 },
      { index: 1, name: "rest", state: WaveState.PENDING, memberIds: ["e", "f", "g", "h", "i", "j"] },
    ],
  });

  it("shows the state, the wave and the counts per member state", () => {
    expect(progressLine(rollout, false, false)).toBe("2.0.0 RUNNING wave 1/2 canary 2/4 succeeded, 1 applying, 0 pending, 1 failed; 2/10 overall");
    expect(progressLine(rollout, false, true)).toContain(`canary ${bar(3, 4)} 2/4`);
    expect(
      progressLine(create(RolloutSchema, { targetVersion: "2.0.0", state: RolloutState.PLANNED, currentWave: -1, waves: rollout.waves }), false, false),
    ).toBe("2.0.0 PLANNED: not started (10 agents in 2 waves)");
  });

  it("draws a bar of done over total", () => {
    expect(bar(0, 4, 8)).toBe("[░░░░░░░░]");
    expect(bar(2, 4, 8)).toBe("[████░░░░]");
    expect(bar(4, 4, 8)).toBe("[████████]");
    expect(bar(0, 0, 4)).toBe("[████]");
  });
});
