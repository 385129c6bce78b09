import { fromBinary } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { type ReleaseManifest, ReleaseManifestSchema, type SignedReleaseManifest } from "../../gen/agentgateway/v1/release_pb.js";
import type { Executor } from "../db/database.js";
import { FailedPreconditionError, InvalidInputError } from "../errors/errors.js";
import { constantTimeEqual } from "../../client/protocol/secrets.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { findReleaseKeyByPublicKey } from "./release-key-store.js";

const validator = createValidator();

/** A manifest whose signature checked out against a registered, unrevoked release key. */
export interface VerifiedManifest {
  manifest: ReleaseManifest;
  releaseKeyId: string;
}

/**
 * Fails closed: the manifest must parse, pass its own validation rules, be signed over the
 * release transcript, and the signing key must be one of the tenant's registered, unrevoked
 * release keys.
 */
export async function verifySignedManifest(db: Executor, tenantId: string, signed: SignedReleaseManifest): Promise<VerifiedManifest> {
  let manifest: ReleaseManifest;
  try {
    manifest = fromBinary(ReleaseManifestSchema, signed.manifest);
  } catch {
    throw new InvalidInputError("manifest is not a serialized agentgateway.v1.ReleaseManifest");
  }
  const validation = validator.validate(ReleaseManifestSchema, manifest);
  if (validation.kind !== "valid") {
    throw new InvalidInputError(`manifest is invalid: ${validation.error.message}`);
  }
  const key = await findReleaseKeyByPublicKey(db, tenantId, signed.releasePublicKey);
  if (!key || !constantTimeEqual(key.publicKey, signed.releasePublicKey)) {
    throw new FailedPreconditionError("manifest is not signed by a registered release key");
  }
  if (key.revokedAt) throw new FailedPreconditionError("manifest is signed by a revoked release key");
  if (!verifyEd25519(signed.releasePublicKey, releaseManifestTranscript(signed.manifest), signed.signature)) {
    throw new FailedPreconditionError("manifest signature does not verify");
  }
  return { manifest, releaseKeyId: key.id };
}
