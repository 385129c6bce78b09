import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ReleaseManifestSchema, type SignedReleaseManifest, SignedReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { publicKeyFromPrivate, sign } from "../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../client/protocol/transcript.js";

/** What a release manifest says. */
export interface ManifestFields {
  version: string;
  artifactUrl: string;
  artifactSha256: Uint8Array;
  artifactSize: bigint;
  notes: string;
  createdAt?: Date;
  /** When agents stop accepting it (default: 30 days after createdAt). */
  expiresAt?: Date;
  /** Lets agents install it even when it is not newer than what they run. */
  allowDowngrade?: boolean;
}

/** How long a signed manifest is accepted unless `--expires-in` says otherwise. */
export const DEFAULT_MANIFEST_LIFETIME_MS = 30 * 86_400_000;

/**
 * Serializes the manifest once and signs those exact bytes over the release transcript
 * (docs/protocol.md, "Release manifests"), so verifiers never re-encode anything.
 */
export function signReleaseManifest(fields: ManifestFields, releasePrivateKey: Uint8Array): SignedReleaseManifest {
  const createdAt = fields.createdAt ?? new Date();
  const manifest = toBinary(
    ReleaseManifestSchema,
    create(ReleaseManifestSchema, {
      version: fields.version,
      artifactUrl: fields.artifactUrl,
      artifactSha256: fields.artifactSha256,
      artifactSize: fields.artifactSize,
      notes: fields.notes,
      createdAt: timestampFromDate(createdAt),
      expiresAt: timestampFromDate(fields.expiresAt ?? new Date(createdAt.getTime() + DEFAULT_MANIFEST_LIFETIME_MS)),
      allowDowngrade: fields.allowDowngrade ?? false,
    }),
  );
  return create(SignedReleaseManifestSchema, {
    manifest,
    signature: sign(releasePrivateKey, releaseManifestTranscript(manifest)),
    releasePublicKey: publicKeyFromPrivate(releasePrivateKey),
  });
}

/** SHA-256 and size of an artifact's bytes. */
export function digestArtifact(bytes: Uint8Array): { sha256: Uint8Array; size: bigint } {
  return { sha256: new Uint8Array(createHash("sha256").update(bytes).digest()), size: BigInt(bytes.length) };
}
