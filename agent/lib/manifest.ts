import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type ReleaseManifest, ReleaseManifestSchema, type SignedReleaseManifest } from "../../gen/agentgateway/v1/release_pb.js";
import { isUsablePublicKey, verifyEd25519 } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { compareSemver, parseSemver } from "./semver.js";

/** A manifest that passed every check, decoded, plus the plain form handed to the update hook. */
export interface VerifiedManifest {
  manifest: ReleaseManifest;
  /** JSON-friendly view (what the hook gets on stdin): every value is covered by the signature. */
  plain: {
    version: string;
    artifactUrl: string;
    artifactSha256: string;
    artifactSize: string;
    notes: string;
    createdAt: string;
    expiresAt: string;
    allowDowngrade: boolean;
    releasePublicKey: string;
  };
}

/**
 * Why a rollout directive was refused. The FAILED ack and progress report carry
 * `<code>: <explanation>`; the codes are stable (docs/protocol.md, "Release manifests").
 */
export type RefusalCode =
  | "MANIFEST_MISSING"
  | "NO_RELEASE_KEYS"
  | "KEY_NOT_PINNED"
  | "BAD_SIGNATURE"
  | "MANIFEST_INVALID"
  | "MANIFEST_EXPIRED"
  | "DOWNGRADE_REFUSED"
  | "DIRECTIVE_INVALID";

/** A refused manifest or directive; nothing of it reaches the update hook. */
export class ManifestError extends Error {
  override name = "ManifestError";
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }

  /** The reason sent in the FAILED ack and progress report. */
  get reason(): string {
    return `${this.code}: ${this.message}`;
  }
}

const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.+_-]*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Highest wave index accepted from the gateway (a rollout has at most 10 waves). */
export const MAX_WAVE = 99;

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
 * re-encoding), and only then is the manifest decoded and its fields checked, its expiry
 * against `now`.
 */
export function verifyReleaseManifest(signed: SignedReleaseManifest | undefined, pinnedKeys: readonly Uint8Array[], now = new Date()): VerifiedManifest {
  if (!signed || signed.manifest.length === 0) throw new ManifestError("MANIFEST_MISSING", "the rollout directive carries no manifest");
  if (pinnedKeys.length === 0) {
    throw new ManifestError("NO_RELEASE_KEYS", "no release keys are pinned on this agent (--release-key): refusing to install anything");
  }
  const key = signed.releasePublicKey;
  if (!pinnedKeys.some((pin) => equalBytes(pin, key))) {
    throw new ManifestError("KEY_NOT_PINNED", `manifest signed by release key ${hexPrefix(key)}…, which is not pinned on this agent`);
  }
  if (!verifyEd25519(key, releaseManifestTranscript(signed.manifest), signed.signature)) {
    throw new ManifestError("BAD_SIGNATURE", "manifest signature does not verify with the pinned release key");
  }
  let manifest: ReleaseManifest;
  try {
    manifest = fromBinary(ReleaseManifestSchema, signed.manifest);
  } catch (err) {
    throw new ManifestError("MANIFEST_INVALID", `signed manifest does not decode: ${(err as Error).message}`);
  }
  const invalid = (message: string) => new ManifestError("MANIFEST_INVALID", message);
  if (!VERSION_PATTERN.test(manifest.version) || manifest.version.length > 64) throw invalid("manifest version is missing or malformed");
  if (manifest.artifactSha256.length !== 32) throw invalid("manifest artifact_sha256 must be 32 bytes");
  if (manifest.artifactSize <= 0n) throw invalid("manifest artifact_size must be positive");
  if (!URL.canParse(manifest.artifactUrl)) throw invalid("manifest artifact_url is not a URL");
  // Without a signed expiry a captured manifest could be replayed forever.
  if (!manifest.expiresAt) throw invalid("manifest has no expires_at: sign it again (agwctl release sign --expires-in)");
  const expiresAt = timestampDate(manifest.expiresAt);
  if (Number.isNaN(expiresAt.getTime())) throw invalid("manifest expires_at is not a valid time");
  if (now.getTime() >= expiresAt.getTime()) {
    throw new ManifestError("MANIFEST_EXPIRED", `manifest for ${manifest.version} expired at ${expiresAt.toISOString()}`);
  }
  return {
    manifest,
    plain: {
      version: manifest.version,
      artifactUrl: manifest.artifactUrl,
      artifactSha256: Buffer.from(manifest.artifactSha256).toString("hex"),
      artifactSize: manifest.artifactSize.toString(),
      notes: manifest.notes,
      createdAt: manifest.createdAt ? timestampDate(manifest.createdAt).toISOString() : "",
      expiresAt: expiresAt.toISOString(),
      allowDowngrade: manifest.allowDowngrade,
      releasePublicKey: Buffer.from(key).toString("hex"),
    },
  };
}

/**
 * Refuses a release that is not newer than the version running now (semantic version
 * precedence), unless the signed manifest itself marks a deliberate downgrade: a compromised
 * gateway can replay old signed manifests, but cannot sign `allow_downgrade` into them. A
 * version that is not a semantic version cannot be shown to be newer, so it is refused too.
 */
export function checkNewer(verified: VerifiedManifest, running: string): void {
  if (verified.manifest.allowDowngrade) return;
  const target = verified.manifest.version;
  const next = parseSemver(target);
  if (!next) throw new ManifestError("DOWNGRADE_REFUSED", `release ${target} is not a semantic version, so it cannot be shown to be newer than ${running}`);
  const current = parseSemver(running);
  if (!current) {
    throw new ManifestError("DOWNGRADE_REFUSED", `the running version ${running} is not a semantic version, so ${target} cannot be shown to be newer`);
  }
  if (compareSemver(next, current) <= 0) {
    throw new ManifestError(
      "DOWNGRADE_REFUSED",
      `release ${target} is not newer than the running ${running}; a downgrade needs a manifest signed with allow_downgrade`,
    );
  }
}

/** Checks the directive's unsigned fields before they go anywhere (progress reports, the hook). */
export function checkDirective(rolloutId: string, wave: number): void {
  if (!UUID.test(rolloutId)) throw new ManifestError("DIRECTIVE_INVALID", "the rollout directive's rollout_id is not a UUID");
  if (!Number.isInteger(wave) || wave < 0 || wave > MAX_WAVE) {
    throw new ManifestError("DIRECTIVE_INVALID", `the rollout directive's wave ${wave} is not between 0 and ${MAX_WAVE}`);
  }
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
