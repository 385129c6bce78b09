import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type ReleaseManifest, ReleaseManifestSchema, type SignedReleaseManifest } from "../../gen/agentgateway/v1/release_pb.js";
import { isUsablePublicKey, verifyEd25519 } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";

/** A manifest that passed every check, decoded, plus the plain form handed to the update hook. */
export interface VerifiedManifest {
  manifest: ReleaseManifest;
  /** JSON-friendly view (what the hook gets on stdin). */
  plain: {
    version: string;
    artifactUrl: string;
    artifactSha256: string;
    artifactSize: string;
    notes: string;
    createdAt: string;
    releasePublicKey: string;
  };
}

/** Why a manifest was refused (the text goes into the FAILED ack and progress report). */
export class ManifestError extends Error {
  override name = "ManifestError";
}

const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.+_-]*$/;

/** Parses pinned release keys given as hex (64 hex digits each); throws on a bad one. */
export function parseReleaseKeys(hexKeys: readonly string[]): Uint8Array[] {
  return hexKeys.map((hex) => {
    const clean = hex.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(clean)) throw new RangeError(`release key must be 64 hex digits (32 bytes), got "${hex}"`);
    const key = Uint8Array.from(Buffer.from(clean, "hex"));
    if (!isUsablePublicKey(key)) throw new RangeError(`release key ${clean} is not a usable ed25519 public key`);
    return key;
  });
}

/**
 * Verifies a SignedReleaseManifest as docs/protocol.md, "Release manifests" requires: the
 * signing key must be one of OUR pins (never trusted because the gateway sent it), the
 * signature must verify over the transcript of the manifest bytes exactly as received (no
 * re-encoding), and only then is the manifest decoded and its fields checked.
 */
export function verifyReleaseManifest(signed: SignedReleaseManifest | undefined, pinnedKeys: readonly Uint8Array[]): VerifiedManifest {
  if (!signed || signed.manifest.length === 0) throw new ManifestError("the rollout directive carries no manifest");
  if (pinnedKeys.length === 0) throw new ManifestError("no release keys are pinned on this agent (--release-key): refusing to install anything");
  const key = signed.releasePublicKey;
  if (!pinnedKeys.some((pin) => equalBytes(pin, key))) {
    throw new ManifestError(`manifest signed by release key ${hexPrefix(key)}…, which is not pinned on this agent`);
  }
  if (!verifyEd25519(key, releaseManifestTranscript(signed.manifest), signed.signature)) {
    throw new ManifestError("manifest signature does not verify with the pinned release key");
  }
  let manifest: ReleaseManifest;
  try {
    manifest = fromBinary(ReleaseManifestSchema, signed.manifest);
  } catch (err) {
    throw new ManifestError(`signed manifest does not decode: ${(err as Error).message}`);
  }
  if (!VERSION_PATTERN.test(manifest.version) || manifest.version.length > 64) throw new ManifestError("manifest version is missing or malformed");
  if (manifest.artifactSha256.length !== 32) throw new ManifestError("manifest artifact_sha256 must be 32 bytes");
  if (manifest.artifactSize <= 0n) throw new ManifestError("manifest artifact_size must be positive");
  if (!URL.canParse(manifest.artifactUrl)) throw new ManifestError("manifest artifact_url is not a URL");
  return {
    manifest,
    plain: {
      version: manifest.version,
      artifactUrl: manifest.artifactUrl,
      artifactSha256: Buffer.from(manifest.artifactSha256).toString("hex"),
      artifactSize: manifest.artifactSize.toString(),
      notes: manifest.notes,
      createdAt: manifest.createdAt ? timestampDate(manifest.createdAt).toISOString() : "",
      releasePublicKey: Buffer.from(key).toString("hex"),
    },
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

function hexPrefix(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 8)).toString("hex");
}
