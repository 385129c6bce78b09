import { readFileSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ReleaseManifestSchema, type SignedReleaseManifest, SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair, sign } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { checkDirective, checkNewer, ManifestError, parseReleaseKeys, type RefusalCode, verifyReleaseManifest } from "./manifest.js";

interface Case {
  id: string;
  release_public_key: string;
  manifest: string;
  signature: string;
  valid: boolean;
  manifest_fields?: {
    version: string;
    artifact_sha256: string;
    artifact_size: string;
    created_at: { seconds: string };
    expires_at: { seconds: string };
    allow_downgrade: boolean;
  };
}

const vectors = JSON.parse(readFileSync(new URL("../../test/vectors/release-manifest.json", import.meta.url), "utf8")) as { cases: Case[] };
const hex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));
const signedOf = (c: Case): SignedReleaseManifest =>
  create(SignedReleaseManifestSchema, { manifest: hex(c.manifest), signature: hex(c.signature), releasePublicKey: hex(c.release_public_key) });
const allPins = parseReleaseKeys([...new Set(vectors.cases.map((c) => c.release_public_key))]);
const at = (seconds: string) => new Date(Number(seconds) * 1000);

/** Expects `fn` to throw a ManifestError with this code, and returns its reason. */
function refusal(fn: () => unknown, code: RefusalCode): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).code).toBe(code);
    expect((err as ManifestError).reason.startsWith(`${code}: `)).toBe(true);
    return (err as ManifestError).reason;
  }
  throw new Error(`expected a ${code} refusal`);
}

describe("verifyReleaseManifest (test/vectors/release-manifest.json)", () => {
  for (const c of vectors.cases) {
    it(`${c.valid ? "accepts" : "refuses"} ${c.id}`, () => {
      if (c.valid) {
        const fields = c.manifest_fields;
        if (!fields) throw new Error("valid cases carry manifest_fields");
        const verified = verifyReleaseManifest(signedOf(c), allPins, at(fields.created_at.seconds));
        expect(verified.plain.version).toBe(fields.version);
        expect(verified.plain.artifactSha256).toBe(fields.artifact_sha256);
        expect(verified.plain.artifactSize).toBe(fields.artifact_size);
        expect(verified.plain.allowDowngrade).toBe(fields.allow_downgrade);
        expect(verified.plain.expiresAt).toBe(at(fields.expires_at.seconds).toISOString());
        // The same bytes are refused from the second they expire.
        refusal(() => verifyReleaseManifest(signedOf(c), allPins, at(fields.expires_at.seconds)), "MANIFEST_EXPIRED");
      } else {
        expect(() => verifyReleaseManifest(signedOf(c), allPins, new Date(0))).toThrow(ManifestError);
      }
    });
  }
});

describe("verifyReleaseManifest", () => {
  const release = generateKeyPair();
  const signManifest = (
    fields: {
      version?: string;
      artifactUrl?: string;
      artifactSha256?: Uint8Array;
      artifactSize?: bigint;
      createdAt?: Timestamp;
      expiresAt?: Timestamp | undefined;
      allowDowngrade?: boolean;
    } = {},
  ) => {
    const manifest = toBinary(
      ReleaseManifestSchema,
      create(ReleaseManifestSchema, {
        version: "1.5.0",
        artifactUrl: "https://releases.example.com/a.tar.gz",
        artifactSha256: new Uint8Array(32).fill(1),
        artifactSize: 10n,
        createdAt: timestampFromMs(Date.now()),
        expiresAt: timestampFromMs(Date.now() + 3_600_000),
        ...fields,
      }),
    );
    return create(SignedReleaseManifestSchema, {
      manifest,
      signature: sign(release.privateKey, releaseManifestTranscript(manifest)),
      releasePublicKey: release.publicKey,
    });
  };
  const good = signManifest();

  it("accepts a manifest signed by a pinned key", () => {
    expect(verifyReleaseManifest(good, [release.publicKey]).plain.version).toBe("1.5.0");
  });

  it("refuses a key the agent did not pin, even with a valid signature", () => {
    const other = generateKeyPair();
    expect(refusal(() => verifyReleaseManifest(good, [other.publicKey]), "KEY_NOT_PINNED")).toMatch(/not pinned/);
  });

  it("refuses everything when no key is pinned", () => {
    expect(refusal(() => verifyReleaseManifest(good, []), "NO_RELEASE_KEYS")).toMatch(/no release keys are pinned/);
  });

  it("refuses a flipped bit in the manifest or the signature", () => {
    const tampered = good.manifest.slice();
    tampered[3] = (tampered[3] ?? 0) ^ 1;
    refusal(() => verifyReleaseManifest({ ...good, manifest: tampered }, [release.publicKey]), "BAD_SIGNATURE");
    const badSig = good.signature.slice();
    badSig[10] = (badSig[10] ?? 0) ^ 0x40;
    refusal(() => verifyReleaseManifest({ ...good, signature: badSig }, [release.publicKey]), "BAD_SIGNATURE");
  });

  it("refuses a signature made for another purpose (no domain separation bypass)", () => {
    const raw = create(SignedReleaseManifestSchema, {
      manifest: good.manifest,
      signature: sign(release.privateKey, good.manifest),
      releasePublicKey: release.publicKey,
    });
    expect(refusal(() => verifyReleaseManifest(raw, [release.publicKey]), "BAD_SIGNATURE")).toMatch(/does not verify/);
  });

  it("refuses a signed manifest whose fields are unusable", () => {
    const bad = signManifest({ artifactUrl: "https://x/y", artifactSha256: new Uint8Array(3), artifactSize: 1n });
    expect(refusal(() => verifyReleaseManifest(bad, [release.publicKey]), "MANIFEST_INVALID")).toMatch(/artifact_sha256/);
  });

  it("refuses an expired manifest, and one that carries no expiry at all", () => {
    const expired = signManifest({ createdAt: timestampFromMs(Date.now() - 7_200_000), expiresAt: timestampFromMs(Date.now() - 1000) });
    expect(refusal(() => verifyReleaseManifest(expired, [release.publicKey]), "MANIFEST_EXPIRED")).toMatch(/1\.5\.0 expired at/);
    const forever = signManifest({ expiresAt: undefined });
    expect(refusal(() => verifyReleaseManifest(forever, [release.publicKey]), "MANIFEST_INVALID")).toMatch(/no expires_at/);
  });

  it("parses pins as 64 hex digits and refuses small-order keys", () => {
    expect(parseReleaseKeys([Buffer.from(release.publicKey).toString("hex").toUpperCase()])[0]).toEqual(release.publicKey);
    expect(() => parseReleaseKeys(["abcd"])).toThrow(/64 hex/);
    expect(() => parseReleaseKeys(["01".padEnd(64, "0")])).toThrow(/not a usable/);
  });

  describe("checkNewer", () => {
    const verified = (version: string, allowDowngrade = false) => verifyReleaseManifest(signManifest({ version, allowDowngrade }), [release.publicKey]);

    it("lets only a newer version through", () => {
      expect(() => checkNewer(verified("1.5.0"), "1.4.9")).not.toThrow();
      expect(() => checkNewer(verified("1.10.0"), "1.9.0")).not.toThrow();
      expect(() => checkNewer(verified("2.0.0"), "2.0.0-rc.1")).not.toThrow();
      expect(refusal(() => checkNewer(verified("1.4.0"), "1.5.0"), "DOWNGRADE_REFUSED")).toMatch(/1\.4\.0 is not newer than the running 1\.5\.0/);
      refusal(() => checkNewer(verified("1.5.0"), "1.5.0"), "DOWNGRADE_REFUSED");
      refusal(() => checkNewer(verified("1.5.0+rebuild"), "1.5.0"), "DOWNGRADE_REFUSED");
      refusal(() => checkNewer(verified("2.0.0-rc.1"), "2.0.0"), "DOWNGRADE_REFUSED");
    });

    it("refuses what cannot be ordered: a version that is not semver, on either side", () => {
      refusal(() => checkNewer(verified("nightly-2026"), "1.0.0"), "DOWNGRADE_REFUSED");
      refusal(() => checkNewer(verified("2.0.0"), "dev"), "DOWNGRADE_REFUSED");
    });

    it("installs anything the signed manifest marks as a deliberate downgrade", () => {
      expect(() => checkNewer(verified("1.4.0", true), "1.5.0")).not.toThrow();
      expect(() => checkNewer(verified("nightly-2026", true), "dev")).not.toThrow();
    });
  });

  it("checks the directive's unsigned rollout id and wave", () => {
    expect(() => checkDirective("3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f", 0)).not.toThrow();
    expect(() => checkDirective("3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f", 99)).not.toThrow();
    refusal(() => checkDirective("3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f; rm -rf /", 0), "DIRECTIVE_INVALID");
    refusal(() => checkDirective("", 0), "DIRECTIVE_INVALID");
    refusal(() => checkDirective("3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f", 100), "DIRECTIVE_INVALID");
    refusal(() => checkDirective("3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f", 4_294_967_295), "DIRECTIVE_INVALID");
  });
});
