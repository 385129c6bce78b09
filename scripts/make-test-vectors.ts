/**
 * Writes the protocol test vectors in test/vectors/ (see test/vectors/README.md).
 *
 *   npx tsx scripts/make-test-vectors.ts
 *
 * Deterministic: fixed key seeds, tokens, ids, nonces and timestamps, and ed25519 signatures
 * are deterministic, so re-running it must leave the files unchanged (git diff is the check).
 * client/protocol/vectors.test.ts checks the committed files against the code.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { ReleaseManifest } from "../gen/agentgateway/v1/release_pb.js";
import { ReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { publicKeyFromPrivate, sign } from "../client/protocol/ed25519.js";
import {
  AUTH_CONTEXT,
  authTranscript,
  CERT_BINDING_CONTEXT,
  certificateBindingTranscript,
  encodeTranscript,
  REGISTER_CONTEXT,
  RELEASE_MANIFEST_CONTEXT,
  registerTranscript,
  releaseManifestTranscript,
} from "../client/protocol/transcript.js";
import {
  normalizeVerificationCode,
  VERIFICATION_CODE_CONTEXT,
  verificationCode,
} from "../client/protocol/verification-code.js";
import { auditCanonicalForm, auditRecordHash, GENESIS_HASH } from "../client/protocol/audit-chain.js";

const outDir = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "vectors");

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const fill = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);
const counting = (start: number): Uint8Array =>
  Uint8Array.from({ length: 32 }, (_, i) => start + i);
const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const ENCODING =
  "transcript = u32be(len(context)) || context || for each field in order: u32be(len(field)) || field; context is ASCII, string fields are UTF-8, UUIDs are the lowercase 8-4-4-4-12 form";
const KEY_NOTE =
  "Keys are test keys derived from fixed, public 32-byte seeds (RFC 8032 private keys). Never use them for anything real.";

// Fixed identities: seed 0x01.. is "agent A", 0x02.. "agent B", 0x03.. "agent C",
// 0x04.. and 0x05.. are release keys.
const seedA = fill(0x01);
const seedB = fill(0x02);
const seedC = fill(0x03);
const seedRelease1 = fill(0x04);
const seedRelease2 = fill(0x05);
const keyA = publicKeyFromPrivate(seedA);
const keyB = publicKeyFromPrivate(seedB);
const keyC = publicKeyFromPrivate(seedC);
const keyRelease1 = publicKeyFromPrivate(seedRelease1);
const keyRelease2 = publicKeyFromPrivate(seedRelease2);

// Tokens of the real shape: agwe_ + base64url(32 bytes).
const token1 = `agwe_${b64url(counting(0x00))}`;
const token2 = `agwe_${b64url(Uint8Array.from({ length: 32 }, (_, i) => 0xff - i))}`;

function registerVectors(): unknown {
  const base = { token: token1, publicKey: keyA, name: "probe-01" };
  const t1 = registerTranscript(base);
  const second = { token: token2, publicKey: keyB, name: "edge.eu-west_7" };

  const valid = (id: string, seed: Uint8Array, input: typeof base, note: string) => {
    const transcript = registerTranscript(input);
    return {
      id,
      note,
      private_key_seed: hex(seed),
      enrollment_token: input.token,
      identity_public_key: hex(input.publicKey),
      name: input.name,
      transcript: hex(transcript),
      proof_signature: hex(sign(seed, transcript)),
      valid: true,
    };
  };
  // A presented (input, signature) pair that must be refused; signer_seed and signed_message
  // say what the signature really covers, so the case cannot silently rot into random bytes.
  const invalid = (
    id: string,
    note: string,
    input: typeof base,
    signerSeed: Uint8Array,
    signedMessage: Uint8Array,
  ) => ({
    id,
    note,
    enrollment_token: input.token,
    identity_public_key: hex(input.publicKey),
    name: input.name,
    transcript: hex(registerTranscript(input)),
    proof_signature: hex(sign(signerSeed, signedMessage)),
    signer_seed: hex(signerSeed),
    signed_message: hex(signedMessage),
    valid: false,
  });

  return {
    description: "Register proof of possession: ed25519 over the register transcript.",
    context: REGISTER_CONTEXT,
    fields: ["enrollment_token (UTF-8)", "identity_public_key (32 bytes)", "name (UTF-8)"],
    encoding: ENCODING,
    note: KEY_NOTE,
    cases: [
      valid("basic", seedA, base, "Agent A registers as probe-01."),
      valid("second-agent", seedB, second, "Agent B, another token and a name using . _ -."),
      invalid(
        "name-changed",
        "A's proof for probe-01 presented with name probe-02: the name is bound.",
        { ...base, name: "probe-02" },
        seedA,
        t1,
      ),
      invalid(
        "token-changed",
        "A's proof for token 1 presented with token 2: the token is bound.",
        { ...base, token: token2 },
        seedA,
        t1,
      ),
      invalid(
        "key-substituted",
        "A's request with B's key swapped in (A's proof kept): refused, B never signed.",
        { ...base, publicKey: keyB },
        seedA,
        t1,
      ),
      invalid(
        "wrong-context",
        "A signed the same fields under the auth context: domain separation refuses it.",
        base,
        seedA,
        encodeTranscript(AUTH_CONTEXT, [utf8(base.token), base.publicKey, utf8(base.name)]),
      ),
      invalid(
        "no-transcript",
        "A signed the bare concatenation token || key || name without context or lengths.",
        base,
        seedA,
        Buffer.concat([utf8(base.token), base.publicKey, utf8(base.name)]),
      ),
    ],
  };
}

function authVectors(): unknown {
  type AuthInput = {
    challengeId: string;
    nonce: Uint8Array;
    agentId: string;
    publicKey: Uint8Array;
  };
  const a: AuthInput = {
    challengeId: "0b7f4c1e-3d2a-4f6b-9c8d-1e2f3a4b5c6d",
    nonce: counting(0x00),
    agentId: "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    publicKey: keyA,
  };
  const c: AuthInput = {
    challengeId: "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    nonce: counting(0xa0),
    agentId: "9a8b7c6d-5e4f-4a3b-b2c1-d0e9f8a7b6c5",
    publicKey: keyC,
  };
  const tA = authTranscript(a);

  const fields = (input: AuthInput) => ({
    challenge_id: input.challengeId,
    nonce: hex(input.nonce),
    agent_id: input.agentId,
    identity_public_key: hex(input.publicKey),
  });
  const valid = (id: string, seed: Uint8Array, input: AuthInput, note: string) => {
    const transcript = authTranscript(input);
    return {
      id,
      note,
      private_key_seed: hex(seed),
      ...fields(input),
      transcript: hex(transcript),
      signature: hex(sign(seed, transcript)),
      valid: true,
    };
  };
  const invalid = (
    id: string,
    note: string,
    input: AuthInput,
    signerSeed: Uint8Array,
    signedMessage: Uint8Array,
  ) => ({
    id,
    note,
    ...fields(input),
    transcript: hex(authTranscript(input)),
    signature: hex(sign(signerSeed, signedMessage)),
    signer_seed: hex(signerSeed),
    signed_message: hex(signedMessage),
    valid: false,
  });

  // What a client that forgot to lowercase the ids would sign.
  const upperCaseTranscript = encodeTranscript(AUTH_CONTEXT, [
    utf8(a.challengeId.toUpperCase()),
    a.nonce,
    utf8(a.agentId.toUpperCase()),
    a.publicKey,
  ]);

  return {
    description: "CompleteAuthHandshake: ed25519 over the auth transcript.",
    context: AUTH_CONTEXT,
    fields: [
      "challenge_id (UTF-8 of the lowercase UUID string)",
      "nonce (32 bytes)",
      "agent_id (UTF-8 of the lowercase UUID string)",
      "identity_public_key (32 bytes)",
    ],
    encoding: ENCODING,
    note: KEY_NOTE,
    cases: [
      valid("basic", seedA, a, "Agent A answers a challenge."),
      valid("second-agent", seedC, c, "Agent C answers another challenge."),
      invalid(
        "replayed-for-new-nonce",
        "A's signature for the old nonce presented for a new challenge nonce.",
        { ...a, nonce: counting(0x40) },
        seedA,
        tA,
      ),
      invalid(
        "other-challenge-id",
        "A's signature presented under another challenge id.",
        { ...a, challengeId: c.challengeId },
        seedA,
        tA,
      ),
      invalid(
        "other-agent-id",
        "A's signature presented for another agent id.",
        { ...a, agentId: c.agentId },
        seedA,
        tA,
      ),
      invalid(
        "uppercase-ids-signed",
        "A signed the ids in uppercase; the transcript always carries them in lowercase.",
        a,
        seedA,
        upperCaseTranscript,
      ),
      invalid(
        "bare-nonce-signed",
        "A signed only the nonce: not the transcript, refused.",
        a,
        seedA,
        a.nonce,
      ),
    ],
  };
}

function releaseVectors(): unknown {
  const manifest1 = create(ReleaseManifestSchema, {
    version: "1.5.0",
    artifactUrl: "https://releases.example.com/agw-agent/1.5.0/agw-agent-linux-x64.tar.gz",
    artifactSha256: new Uint8Array(
      createHash("sha256").update("agw-agent 1.5.0 linux-x64").digest(),
    ),
    artifactSize: 12_345_678n,
    notes: "Fixes reconnect backoff after GoAway DRAIN.",
    createdAt: create(TimestampSchema, { seconds: 1_768_478_400n, nanos: 0 }), // 2026-01-15T12:00:00Z
    expiresAt: create(TimestampSchema, { seconds: 1_771_070_400n, nanos: 0 }), // 30 days later
  });
  const manifest2 = create(ReleaseManifestSchema, {
    version: "2.0.0-rc.1",
    artifactUrl: "https://releases.example.com/agw-agent/2.0.0-rc.1/agw-agent-linux-arm64.tar.gz",
    artifactSha256: new Uint8Array(
      createHash("sha256").update("agw-agent 2.0.0-rc.1 linux-arm64").digest(),
    ),
    artifactSize: 9_876_543n,
    notes: "",
    createdAt: create(TimestampSchema, { seconds: 1_772_323_200n, nanos: 500_000_000 }), // 2026-03-01T00:00:00.5Z
    expiresAt: create(TimestampSchema, { seconds: 1_772_366_400n, nanos: 0 }), // 2026-03-01T12:00:00Z
  });
  // A deliberate downgrade back to 1.4.2: the signer sets allow_downgrade.
  const manifest3 = create(ReleaseManifestSchema, {
    version: "1.4.2",
    artifactUrl: "https://releases.example.com/agw-agent/1.4.2/agw-agent-linux-x64.tar.gz",
    artifactSha256: new Uint8Array(
      createHash("sha256").update("agw-agent 1.4.2 linux-x64").digest(),
    ),
    artifactSize: 12_000_000n,
    notes: "Roll back 1.5.0.",
    createdAt: create(TimestampSchema, { seconds: 1_768_564_800n, nanos: 0 }), // 2026-01-16T12:00:00Z
    expiresAt: create(TimestampSchema, { seconds: 1_769_169_600n, nanos: 0 }), // 7 days later
    allowDowngrade: true,
  });
  const bytes1 = toBinary(ReleaseManifestSchema, manifest1);
  const bytes2 = toBinary(ReleaseManifestSchema, manifest2);
  const bytes3 = toBinary(ReleaseManifestSchema, manifest3);
  const t1 = releaseManifestTranscript(bytes1);

  const describeManifest = (m: ReleaseManifest) => ({
    version: m.version,
    artifact_url: m.artifactUrl,
    artifact_sha256: hex(m.artifactSha256),
    artifact_size: m.artifactSize.toString(),
    notes: m.notes,
    created_at: {
      seconds: (m.createdAt?.seconds ?? 0n).toString(),
      nanos: m.createdAt?.nanos ?? 0,
    },
    expires_at: {
      seconds: (m.expiresAt?.seconds ?? 0n).toString(),
      nanos: m.expiresAt?.nanos ?? 0,
    },
    allow_downgrade: m.allowDowngrade,
  });
  const valid = (
    id: string,
    seed: Uint8Array,
    m: ReleaseManifest,
    bytes: Uint8Array,
    note: string,
  ) => {
    const transcript = releaseManifestTranscript(bytes);
    return {
      id,
      note,
      private_key_seed: hex(seed),
      release_public_key: hex(publicKeyFromPrivate(seed)),
      manifest_fields: describeManifest(m),
      manifest: hex(bytes),
      transcript: hex(transcript),
      signature: hex(sign(seed, transcript)),
      valid: true,
    };
  };
  const invalid = (
    id: string,
    note: string,
    publicKey: Uint8Array,
    bytes: Uint8Array,
    signerSeed: Uint8Array,
    signedMessage: Uint8Array,
  ) => ({
    id,
    note,
    release_public_key: hex(publicKey),
    manifest: hex(bytes),
    transcript: hex(releaseManifestTranscript(bytes)),
    signature: hex(sign(signerSeed, signedMessage)),
    signer_seed: hex(signerSeed),
    signed_message: hex(signedMessage),
    valid: false,
  });

  // Same manifest with the version string 1.5.0 -> 1.5.1 (same length, one byte differs).
  const tampered = bytes1.slice();
  const at = Buffer.from(tampered).indexOf("1.5.0");
  tampered[at + 4] = 0x31;

  return {
    description:
      "Release manifests: ed25519 by a release key over the release-manifest transcript of the serialized ReleaseManifest bytes (SignedReleaseManifest.manifest, used as-is, never re-encoded).",
    context: RELEASE_MANIFEST_CONTEXT,
    fields: ["manifest (the serialized agentgateway.v1.ReleaseManifest bytes)"],
    encoding: ENCODING,
    note: `${KEY_NOTE} manifest_fields is informational: verifiers must use the manifest bytes.`,
    cases: [
      valid("basic", seedRelease1, manifest1, bytes1, "Release key 1 signs 1.5.0."),
      valid("second-key", seedRelease2, manifest2, bytes2, "Release key 2 signs 2.0.0-rc.1."),
      valid("allow-downgrade", seedRelease1, manifest3, bytes3, "Release key 1 signs a deliberate downgrade to 1.4.2 (allow_downgrade)."),
      invalid(
        "manifest-tampered",
        "Key 1's signature for 1.5.0 presented with the version bytes changed to 1.5.1.",
        keyRelease1,
        tampered,
        seedRelease1,
        t1,
      ),
      invalid(
        "other-key",
        "Key 1's valid signature checked against key 2: refused (check the pinned key the manifest names).",
        keyRelease2,
        bytes1,
        seedRelease1,
        t1,
      ),
      invalid(
        "raw-manifest-signed",
        "Key 1 signed the bare manifest bytes without the transcript: refused.",
        keyRelease1,
        bytes1,
        seedRelease1,
        bytes1,
      ),
    ],
  };
}

function verificationCodeVectors(): unknown {
  const rfc8032Test1 = Uint8Array.from(
    Buffer.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "hex"),
  );
  const keys: { id: string; seed?: Uint8Array; publicKey: Uint8Array }[] = [
    { id: "agent-a", seed: seedA, publicKey: keyA },
    { id: "agent-b", seed: seedB, publicKey: keyB },
    { id: "agent-c", seed: seedC, publicKey: keyC },
    { id: "release-1", seed: seedRelease1, publicKey: keyRelease1 },
    { id: "release-2", seed: seedRelease2, publicKey: keyRelease2 },
    { id: "rfc8032-test-1", publicKey: rfc8032Test1 },
  ];
  return {
    description:
      "Verification code: SHA-256(ASCII context || 32-byte key), first 40 bits, 8 Crockford base32 chars MSB first, formatted XXXX-XXXX.",
    context: VERIFICATION_CODE_CONTEXT,
    alphabet: "0123456789ABCDEFGHJKMNPQRSTVWXYZ",
    note: KEY_NOTE,
    cases: keys.map(({ id, seed, publicKey }) => {
      const digest = createHash("sha256")
        .update(VERIFICATION_CODE_CONTEXT, "ascii")
        .update(publicKey)
        .digest();
      return {
        id,
        ...(seed === undefined ? {} : { private_key_seed: hex(seed) }),
        public_key: hex(publicKey),
        sha256: digest.toString("hex"),
        first_40_bits: digest.subarray(0, 5).toString("hex"),
        code: verificationCode(publicKey),
      };
    }),
    normalization: [
      verificationCode(keyA),
      verificationCode(keyA).toLowerCase(),
      ` ${verificationCode(keyA).replace("-", " ")} `,
      "o1l1-iOIL",
      "7kq2m9xd",
    ].map((input) => ({ input, normalized: normalizeVerificationCode(input) })),
  };
}

function auditChainVectors(): unknown {
  const tenantId = "0b6f7a9e-3c1d-4e2f-8a5b-6c7d8e9f0a1b";
  const records: { actor: string; action: string; target: string; data: Record<string, unknown> }[] = [
    { actor: "system", action: "tenant.created", target: `tenant:${tenantId}`, data: { name: "acme" } },
    {
      actor: "operator:5d2c9b8a-7e6f-4a3b-9c1d-2e3f4a5b6c7d",
      action: "rollout.created",
      target: "rollout:8e9f0a1b-2c3d-4e5f-a6b7-c8d9e0f1a2b3",
      data: {
        target_version: "1.4.0",
        waves: [{ name: "canary", members: 1 }, { name: "early", members: 10 }, { name: "rest", members: 89 }],
      },
    },
    {
      actor: "agent:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
      action: "example.numbers_and_strings",
      target: "agent:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
      data: {
        // Numbers as a JSON parser reads them into IEEE 754 doubles (google.protobuf.Struct
        // does the same), written back in the shortest round-trip form.
        integer: 42,
        negative: -5,
        zero: 0,
        fraction: 0.1,
        one_and_a_half: 1.5,
        large: 1e21,
        below_large: 123456789012345680000,
        small: 1e-7,
        above_small: 0.000001,
        max_safe: 9007199254740991,
        flags: [true, false, null],
        // Keys sort by UTF-16 code units: "😀" (D83D DE00) before "\uffff", unlike code points.
        nested: { z: [1, "two", { b: 1, a: 2 }], é: "e-acute", "😀": "astral", "\uffff": "last in the BMP", A: "upper before lower" },
        text: "quote\" backslash\\ newline\n tab\t control\u0001 line-separator\u2028 slash/ non-ascii: żółw",
      },
    },
    { actor: "system", action: "example.empty_data", target: "system", data: {} },
  ];
  let prevHash: Uint8Array = GENESIS_HASH;
  const cases = records.map((r, i) => {
    const content = { tenantId, seq: i + 1, ...r, createdAt: new Date(Date.UTC(2026, 10, 26, 16, 48, 43, 446 + i)), prevHash };
    const hash = auditRecordHash(content);
    const out = {
      seq: content.seq,
      tenant_id: tenantId,
      actor: r.actor,
      action: r.action,
      target: r.target,
      data: r.data,
      created_at: content.createdAt.toISOString(),
      prev_hash: hex(prevHash),
      canonical: auditCanonicalForm(content),
      hash: hex(hash),
    };
    prevHash = hash;
    return out;
  });
  return {
    description:
      "Audit chain: hash = SHA-256(UTF-8(canonical)), canonical = RFC 8785 JSON of {action, actor, created_at, data, prev_hash, seq, target, tenant_id}; prev_hash of seq 1 is 32 zero bytes, of seq n the hash of seq n-1.",
    records: cases,
  };
}

function certBindingVectors(): unknown {
  // A fixed P-256 SubjectPublicKeyInfo (the generator point's key, public and well known), as
  // it appears inside a CSR; the transcript carries its SHA-256.
  const spki = Buffer.from(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    "hex",
  );
  const spkiSha256 = createHash("sha256").update(spki).digest();
  const agentA = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
  const agentC = "9a8b7c6d-5e4f-4a3b-b2c1-d0e9f8a7b6c5";
  const fields = (agentId: string) => ({ agent_id: agentId, spki_der: hex(spki), spki_sha256: hex(spkiSha256) });
  const tA = certificateBindingTranscript({ agentId: agentA, spkiSha256 });
  const tC = certificateBindingTranscript({ agentId: agentC, spkiSha256 });
  return {
    description: "IssueAgentCertificate.binding_signature: ed25519 by the identity key over the cert-binding transcript.",
    context: CERT_BINDING_CONTEXT,
    fields: ["agent_id (UTF-8 of the lowercase UUID string)", "SHA-256 of the CSR's DER SubjectPublicKeyInfo (32 bytes)"],
    encoding: ENCODING,
    note: KEY_NOTE,
    cases: [
      { id: "basic", note: "Agent A binds a P-256 TLS key.", private_key_seed: hex(seedA), identity_public_key: hex(keyA), ...fields(agentA), transcript: hex(tA), signature: hex(sign(seedA, tA)), valid: true },
      { id: "second-agent", note: "Agent C binds the same public key (each agent may only bind for its own id).", private_key_seed: hex(seedC), identity_public_key: hex(keyC), ...fields(agentC), transcript: hex(tC), signature: hex(sign(seedC, tC)), valid: true },
      { id: "other-agent-id", note: "A's binding presented for agent C's id (C's key): refused.", identity_public_key: hex(keyC), ...fields(agentC), transcript: hex(tC), signature: hex(sign(seedA, tA)), signer_seed: hex(seedA), signed_message: hex(tA), valid: false },
      { id: "spki-not-hashed", note: "A signed the whole SPKI instead of its SHA-256: refused.", identity_public_key: hex(keyA), ...fields(agentA), transcript: hex(tA), signature: hex(sign(seedA, encodeTranscript(CERT_BINDING_CONTEXT, [utf8(agentA), spki]))), signer_seed: hex(seedA), signed_message: hex(encodeTranscript(CERT_BINDING_CONTEXT, [utf8(agentA), spki])), valid: false },
    ],
  };
}

function write(name: string, value: unknown): void {
  writeFileSync(join(outDir, name), `${JSON.stringify(value, null, 2)}\n`);
  console.log(`wrote test/vectors/${name}`);
}

write("register.json", registerVectors());
write("auth.json", authVectors());
write("release-manifest.json", releaseVectors());
write("verification-code.json", verificationCodeVectors());
write("audit-chain.json", auditChainVectors());
write("cert-binding.json", certBindingVectors());
