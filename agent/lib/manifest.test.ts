import { readFileSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ReleaseManifestSchema, type SignedReleaseManifest, SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair, sign } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { ManifestError, parseReleaseKeys, verifyReleaseManifest } from "./manifest.js";

interface Case {
  id: string;
  release_public_key: string;
  manifest: string;
  signature: string;
  valid: boolean;
  manifest_fields?: { version: string; artifact_sha256: string; artifact_size: string };
}

const vectors = JSON.parse(readFileSync(new URL("../../test/vectors/release-manifest.json", import.meta.url), "utf8")) as { cases: Case[] };
const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const signedOf = (c: Case): SignedReleaseManifest =>
  create(SignedReleaseManifestSchema, { manifest: hex(c.manifest), signature: hex(c.signature), releasePublicKey: hex(c.release_public_key) });
const allPins = parseReleaseKeys([...new Set(vectors.cases.map((c) => c.release_public_key))]);

describe("verifyReleaseManifest (test/vectors/release-manifest.json)", () => {
  for (const c of vectors.cases) {
    it(`${c.valid ? "accepts" : "refuses"} ${c.id}`, () => {
      if (c.valid) {
        const verified = verifyReleaseManifest(signedOf(c), allPins);
        expect(verified.plain.version).toBe(c.manifest_fields?.version);
        expect(verified.plain.artifactSha256).toBe(c.manifest_fields?.artifact_sha256);
        expect(verified.plain.artifactSize).toBe(c.manifest_fields?.artifact_size);
      } else {
        expect(() => verifyReleaseManifest(signedOf(c), allPins)).toThrow(ManifestError);
      }
    });
  }
});

describe("verifyReleaseManifest", () => {
  const release = generateKeyPair();
  const manifest = toBinary(
    ReleaseManifestSchema,
    create(ReleaseManifestSchema, {
      version: "1.5.0",
      artifactUrl: "https://releases.example.com/a.tar.gz",
      artifactSha256: new Uint8Array(32).fill(1),
      artifactSize: 10n,
      createdAt: timestampNow(),
    }),
  );
  const good = create(SignedReleaseManifestSchema, {
    manifest,
    signature: sign(release.privateKey, releaseManifestTranscript(manifest)),
    releasePublicKey: release.publicKey,
  });

  it("accepts a manifest signed by a pinned key", () => {
    expect(verifyReleaseManifest(good, [release.publicKey]).plain.version).toBe("1.5.0");
  });

  it("refuses a key the agent did not pin, even with a valid signature", () => {
    const other = generateKeyPair();
    expect(() => verifyReleaseManifest(good, [other.publicKey])).toThrow(/not pinned/);
  });

  it("refuses everything when no key is pinned", () => {
    expect(() => verifyReleaseManifest(good, [])).toThrow(/no release keys are pinned/);
  });

  it("refuses a flipped bit in the manifest or the signature", () => {
    const tampered = good.manifest.slice();
    tampered[3] = (tampered[3] ?? 0) ^ 1;
    expect(() => verifyReleaseManifest({ ...good, manifest: tampered }, [release.publicKey])).toThrow(/does not verify/);
    const badSig = good.signature.slice();
    badSig[10] = (badSig[10] ?? 0) ^ 0x40;
    expect(() => verifyReleaseManifest({ ...good, signature: badSig }, [release.publicKey])).toThrow(/does not verify/);
  });

  it("refuses a signature made for another purpose (no domain separation bypass)", () => {
    const raw = create(SignedReleaseManifestSchema, { manifest, signature: sign(release.privateKey, manifest), releasePublicKey: release.publicKey });
    expect(() => verifyReleaseManifest(raw, [release.publicKey])).toThrow(/does not verify/);
  });

  it("refuses a signed manifest whose fields are unusable", () => {
    const bad = toBinary(
      ReleaseManifestSchema,
      create(ReleaseManifestSchema, { version: "1.5.0", artifactUrl: "https://x/y", artifactSha256: new Uint8Array(3), artifactSize: 1n }),
    );
    const signed = create(SignedReleaseManifestSchema, {
      manifest: bad,
      signature: sign(release.privateKey, releaseManifestTranscript(bad)),
      releasePublicKey: release.publicKey,
    });
    expect(() => verifyReleaseManifest(signed, [release.publicKey])).toThrow(/artifact_sha256/);
  });

  it("parses pins as 64 hex digits and refuses small-order keys", () => {
    expect(parseReleaseKeys([Buffer.from(release.publicKey).toString("hex").toUpperCase()])[0]).toEqual(release.publicKey);
    expect(() => parseReleaseKeys(["abcd"])).toThrow(/64 hex/);
    expect(() => parseReleaseKeys(["01".padEnd(64, "0")])).toThrow(/not a usable/);
  });
});
