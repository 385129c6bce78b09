import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReleaseManifestSchema, SignedReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { verifyEd25519 } from "../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../client/protocol/transcript.js";

const run = promisify(execFile);
const AGWCTL = new URL("../bin/agwctl.js", import.meta.url).pathname;
let dir: string;
let key: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agwctl-sign-"));
  key = join(dir, "release.key");
  await run(process.execPath, [AGWCTL, "release", "keygen", "--out", key]);
}, 30_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `agwctl release sign` with the given extra flags; the decoded manifest it printed. */
async function sign(...flags: string[]) {
  const { stdout } = await run(process.execPath, [
    AGWCTL,
    "release",
    "sign",
    "--key",
    key,
    "--version",
    "1.4.0",
    "--artifact-url",
    "https://releases.example.com/a.tgz",
    "--sha256",
    "ab".repeat(32),
    "--size",
    "10",
    ...flags,
  ]);
  const signed = fromJsonString(SignedReleaseManifestSchema, stdout);
  expect(verifyEd25519(signed.releasePublicKey, releaseManifestTranscript(signed.manifest), signed.signature)).toBe(true);
  const manifest = fromBinary(ReleaseManifestSchema, signed.manifest);
  const lifetimeMs = timestampMs(manifest.expiresAt!) - timestampMs(manifest.createdAt!);
  return { manifest, lifetimeMs };
}

describe("agwctl release sign", () => {
  it("signs an expiry 30 days out by default, and no downgrade", async () => {
    const { manifest, lifetimeMs } = await sign();
    expect(lifetimeMs).toBe(30 * 86_400_000);
    expect(manifest.allowDowngrade).toBe(false);
  }, 30_000);

  it("signs --expires-in and --allow-downgrade into the manifest", async () => {
    const { manifest, lifetimeMs } = await sign("--expires-in", "12h", "--allow-downgrade");
    expect(lifetimeMs).toBe(12 * 3_600_000);
    expect(manifest.allowDowngrade).toBe(true);
  }, 30_000);

  it("refuses an --expires-in that is not a positive duration (exit 2)", async () => {
    for (const bad of ["0", "soon", "-1h"]) {
      const failed = await sign(`--expires-in=${bad}`).then(
        () => undefined,
        (err: { code?: number; stderr?: string }) => err,
      );
      expect(failed?.code, bad).toBe(2);
      expect(failed?.stderr).toMatch(/--expires-in must be a duration/);
    }
    expect(await readFile(key, "utf8")).toMatch(/^[0-9a-f]{64}\n$/);
  }, 30_000);
});
