// Checks the committed test vectors (test/vectors/, made by scripts/make-test-vectors.ts)
// against the code, so the vectors that other-language clients rely on can never drift.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fromBinary, fromJson, type JsonObject, toBinary, toJson } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { auditCanonicalForm, auditRecordHash, GENESIS_HASH } from "./audit-chain.js";
import { describe, expect, it } from "vitest";
import { ReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { publicKeyFromPrivate, sign, verifyEd25519 } from "./ed25519.js";
import {
  AUTH_CONTEXT,
  authTranscript,
  CERT_BINDING_CONTEXT,
  certificateBindingTranscript,
  REGISTER_CONTEXT,
  RELEASE_MANIFEST_CONTEXT,
  registerTranscript,
  releaseManifestTranscript,
} from "./transcript.js";
import {
  normalizeVerificationCode,
  VERIFICATION_CODE_CONTEXT,
  verificationCode,
} from "./verification-code.js";

/** Fields every signature case carries; valid cases have the seed, invalid ones the signer. */
interface SignatureCase {
  id: string;
  transcript: string;
  valid: boolean;
  private_key_seed?: string;
  signer_seed?: string;
  signed_message?: string;
}

interface RegisterCase extends SignatureCase {
  enrollment_token: string;
  identity_public_key: string;
  name: string;
  proof_signature: string;
}

interface AuthCase extends SignatureCase {
  challenge_id: string;
  nonce: string;
  agent_id: string;
  identity_public_key: string;
  signature: string;
}

interface ReleaseCase extends SignatureCase {
  release_public_key: string;
  manifest: string;
  signature: string;
  manifest_fields?: {
    version: string;
    artifact_url: string;
    artifact_sha256: string;
    artifact_size: string;
    notes: string;
    created_at: { seconds: string; nanos: number };
    expires_at: { seconds: string; nanos: number };
    allow_downgrade: boolean;
  };
}

interface VectorFile<C> {
  context: string;
  cases: C[];
}

interface VerificationCodeFile {
  context: string;
  alphabet: string;
  cases: {
    id: string;
    private_key_seed?: string;
    public_key: string;
    sha256: string;
    first_40_bits: string;
    code: string;
  }[];
  normalization: { input: string; normalized: string }[];
}

function load<T>(name: string): T {
  const text = readFileSync(new URL(`../../test/vectors/${name}`, import.meta.url), "utf8");
  return JSON.parse(text) as T;
}

const bytes = (hex: string): Uint8Array => {
  expect(hex).toMatch(/^([0-9a-f]{2})*$/);
  return Uint8Array.from(Buffer.from(hex, "hex"));
};
const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Checks signing and verification of one case against the transcript the code computed. */
function checkSignature(c: SignatureCase, publicKeyHex: string, signatureHex: string): void {
  const publicKey = bytes(publicKeyHex);
  const transcript = bytes(c.transcript);
  const signature = bytes(signatureHex);
  if (c.valid) {
    expect(c.private_key_seed, `${c.id}: valid cases carry the seed`).toBeDefined();
    const seed = bytes(c.private_key_seed ?? "");
    expect(toHex(publicKeyFromPrivate(seed))).toBe(publicKeyHex);
    expect(toHex(sign(seed, transcript))).toBe(signatureHex);
  } else {
    // The signature is a real one, just not over this transcript (or not by this key).
    expect(
      c.signer_seed && c.signed_message,
      `${c.id}: invalid cases say what was signed`,
    ).toBeTruthy();
    expect(toHex(sign(bytes(c.signer_seed ?? ""), bytes(c.signed_message ?? "")))).toBe(
      signatureHex,
    );
  }
  expect(verifyEd25519(publicKey, transcript, signature), c.id).toBe(c.valid);
}

function checkShape(file: VectorFile<SignatureCase>, context: string): void {
  expect(file.context).toBe(context);
  expect(file.cases.filter((c) => c.valid).length).toBeGreaterThanOrEqual(2);
  expect(file.cases.filter((c) => !c.valid).length).toBeGreaterThanOrEqual(1);
  expect(new Set(file.cases.map((c) => c.id)).size).toBe(file.cases.length);
}

describe("test/vectors/register.json", () => {
  const file = load<VectorFile<RegisterCase>>("register.json");
  it("has valid and invalid cases", () => checkShape(file, REGISTER_CONTEXT));
  for (const c of file.cases) {
    it(c.id, () => {
      const transcript = registerTranscript({
        token: c.enrollment_token,
        publicKey: bytes(c.identity_public_key),
        name: c.name,
      });
      expect(toHex(transcript)).toBe(c.transcript);
      checkSignature(c, c.identity_public_key, c.proof_signature);
    });
  }
});

describe("test/vectors/auth.json", () => {
  const file = load<VectorFile<AuthCase>>("auth.json");
  it("has valid and invalid cases", () => checkShape(file, AUTH_CONTEXT));
  for (const c of file.cases) {
    it(c.id, () => {
      const transcript = authTranscript({
        challengeId: c.challenge_id,
        nonce: bytes(c.nonce),
        agentId: c.agent_id,
        publicKey: bytes(c.identity_public_key),
      });
      expect(toHex(transcript)).toBe(c.transcript);
      checkSignature(c, c.identity_public_key, c.signature);
    });
  }
});

interface CertBindingCase extends SignatureCase {
  agent_id: string;
  identity_public_key: string;
  spki_der: string;
  spki_sha256: string;
  signature: string;
}

describe("test/vectors/cert-binding.json", () => {
  const file = load<VectorFile<CertBindingCase>>("cert-binding.json");
  it("has valid and invalid cases", () => checkShape(file, CERT_BINDING_CONTEXT));
  for (const c of file.cases) {
    it(c.id, () => {
      expect(toHex(createHash("sha256").update(bytes(c.spki_der)).digest())).toBe(c.spki_sha256);
      expect(toHex(certificateBindingTranscript({ agentId: c.agent_id, spkiSha256: bytes(c.spki_sha256) }))).toBe(c.transcript);
      checkSignature(c, c.identity_public_key, c.signature);
    });
  }
});

describe("test/vectors/release-manifest.json", () => {
  const file = load<VectorFile<ReleaseCase>>("release-manifest.json");
  it("has valid and invalid cases", () => checkShape(file, RELEASE_MANIFEST_CONTEXT));
  for (const c of file.cases) {
    it(c.id, () => {
      const manifest = bytes(c.manifest);
      expect(toHex(releaseManifestTranscript(manifest))).toBe(c.transcript);
      checkSignature(c, c.release_public_key, c.signature);
      if (c.manifest_fields !== undefined) {
        const decoded = fromBinary(ReleaseManifestSchema, manifest);
        expect({
          version: decoded.version,
          artifact_url: decoded.artifactUrl,
          artifact_sha256: toHex(decoded.artifactSha256),
          artifact_size: decoded.artifactSize.toString(),
          notes: decoded.notes,
          created_at: {
            seconds: (decoded.createdAt?.seconds ?? 0n).toString(),
            nanos: decoded.createdAt?.nanos ?? 0,
          },
          expires_at: {
            seconds: (decoded.expiresAt?.seconds ?? 0n).toString(),
            nanos: decoded.expiresAt?.nanos ?? 0,
          },
          allow_downgrade: decoded.allowDowngrade,
        }).toEqual(c.manifest_fields);
      }
    });
  }
});

describe("test/vectors/verification-code.json", () => {
  const file = load<VerificationCodeFile>("verification-code.json");

  it("states the context and alphabet the code uses", () => {
    expect(file.context).toBe(VERIFICATION_CODE_CONTEXT);
    expect(file.alphabet).toBe("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
    expect(file.cases.length).toBeGreaterThanOrEqual(2);
  });

  for (const c of file.cases) {
    it(c.id, () => {
      const publicKey = bytes(c.public_key);
      if (c.private_key_seed !== undefined) {
        expect(toHex(publicKeyFromPrivate(bytes(c.private_key_seed)))).toBe(c.public_key);
      }
      const digest = createHash("sha256")
        .update(file.context, "ascii")
        .update(publicKey)
        .digest("hex");
      expect(digest).toBe(c.sha256);
      expect(c.first_40_bits).toBe(c.sha256.slice(0, 10));
      expect(verificationCode(publicKey)).toBe(c.code);
    });
  }

  it("normalizes operator input as listed", () => {
    for (const n of file.normalization) {
      expect(normalizeVerificationCode(n.input), n.input).toBe(n.normalized);
    }
  });
});

interface AuditChainFile {
  records: {
    seq: number;
    tenant_id: string;
    actor: string;
    action: string;
    target: string;
    data: Record<string, unknown>;
    created_at: string;
    prev_hash: string;
    canonical: string;
    hash: string;
  }[];
}

describe("test/vectors/audit-chain.json", () => {
  const file = load<AuditChainFile>("audit-chain.json");
  const contentOf = (r: AuditChainFile["records"][number], data: Record<string, unknown>) => ({
    tenantId: r.tenant_id,
    seq: r.seq,
    actor: r.actor,
    action: r.action,
    target: r.target,
    data,
    createdAt: new Date(r.created_at),
    prevHash: bytes(r.prev_hash),
  });

  it("is a chain from the genesis hash", () => {
    expect(file.records.length).toBeGreaterThanOrEqual(3);
    expect(file.records[0]!.prev_hash).toBe(toHex(GENESIS_HASH));
    for (let i = 1; i < file.records.length; i++) expect(file.records[i]!.prev_hash).toBe(file.records[i - 1]!.hash);
  });

  for (const r of file.records) {
    it(`record ${r.seq} (${r.action}): canonical form and hash`, () => {
      expect(auditCanonicalForm(contentOf(r, r.data))).toBe(r.canonical);
      expect(createHash("sha256").update(r.canonical, "utf8").digest("hex")).toBe(r.hash);
      expect(toHex(auditRecordHash(contentOf(r, r.data)))).toBe(r.hash);
    });

    it(`record ${r.seq}: data decoded as google.protobuf.Struct reproduces the hash`, () => {
      // What a verifier in another language holds after ListAuditEvents: the Struct, not our JSON.
      const struct = fromBinary(StructSchema, toBinary(StructSchema, fromJson(StructSchema, r.data as JsonObject)));
      const data = toJson(StructSchema, struct) as Record<string, unknown>;
      expect(toHex(auditRecordHash(contentOf(r, data)))).toBe(r.hash);
    });
  }

  it("a changed byte anywhere changes the hash", () => {
    const r = file.records.find((x) => x.action === "example.numbers_and_strings")!;
    const tampered = { ...r.data, fraction: 0.10000000000000002 };
    expect(toHex(auditRecordHash(contentOf(r, tampered)))).not.toBe(r.hash);
    expect(toHex(auditRecordHash({ ...contentOf(r, r.data), tenantId: "00000000-0000-4000-8000-000000000000" }))).not.toBe(r.hash);
  });

  it("refuses data that JSON cannot carry, so no unverifiable record is written", () => {
    const r = file.records[0]!;
    for (const bad of [{ n: Number.NaN }, { n: Number.POSITIVE_INFINITY }, { d: new Date(0) }, { a: [undefined] }, { b: 1n }]) {
      expect(() => auditRecordHash(contentOf(r, bad as Record<string, unknown>))).toThrow(TypeError);
    }
  });
});
