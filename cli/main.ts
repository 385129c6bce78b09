import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { toJsonString } from "@bufbuild/protobuf";
import { SignedReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { parseDurationMs } from "../client/values.js";
import { DEFAULT_MANIFEST_LIFETIME_MS, digestArtifact, signReleaseManifest } from "./release.js";

const USAGE = `usage: agwctl <command> [flags]

release keygen --out FILE
    Create an ed25519 release signing key. Writes the private key (hex) to FILE with mode 0600
    and prints the public key (hex) to register with ReleaseKeyService.RegisterReleaseKey.
release sign --key FILE --version V --artifact-url URL (--artifact FILE | --sha256 HEX --size N)
             [--notes TEXT] [--expires-in DUR] [--allow-downgrade] [--out FILE]
    Sign a release manifest offline. Prints the SignedReleaseManifest as protobuf JSON (or writes
    it to --out), ready for RolloutService.CreateRollout's spec.manifest. Agents refuse it after
    --expires-in (default 30d; e.g. 12h, 90d), and refuse a version that is not newer than the
    one they run unless it is signed with --allow-downgrade.`;

function fail(message: string): never {
  console.error(`agwctl: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function readPrivateKey(path: string): Uint8Array {
  const hex = readFileSync(path, "utf8").trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) fail(`${path} does not hold a 32-byte hex private key`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

function main(argv: string[]): void {
  const [group, command, ...rest] = argv;
  if (group !== "release" || !command) fail("unknown command");
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: "string" },
      key: { type: "string" },
      version: { type: "string" },
      "artifact-url": { type: "string" },
      artifact: { type: "string" },
      sha256: { type: "string" },
      size: { type: "string" },
      notes: { type: "string" },
      "expires-in": { type: "string" },
      "allow-downgrade": { type: "boolean" },
    },
    strict: true,
  });
  if (command === "keygen") {
    if (!values.out) fail("release keygen needs --out FILE");
    const pair = generateKeyPair();
    writeFileSync(values.out, `${Buffer.from(pair.privateKey).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
    console.log(Buffer.from(pair.publicKey).toString("hex"));
    return;
  }
  if (command === "sign") {
    if (!values.key || !values.version || !values["artifact-url"]) fail("release sign needs --key, --version and --artifact-url");
    let digest: { sha256: Uint8Array; size: bigint };
    if (values.artifact) {
      digest = digestArtifact(readFileSync(values.artifact));
    } else {
      if (!values.sha256 || !/^[0-9a-f]{64}$/i.test(values.sha256) || !values.size || !/^\d+$/.test(values.size)) {
        fail("give --artifact FILE, or --sha256 (64 hex characters) and --size (bytes)");
      }
      digest = { sha256: new Uint8Array(Buffer.from(values.sha256, "hex")), size: BigInt(values.size) };
    }
    const lifetimeMs = values["expires-in"] === undefined ? DEFAULT_MANIFEST_LIFETIME_MS : parseDurationMs(values["expires-in"]);
    if (!lifetimeMs) fail("--expires-in must be a duration like 12h or 30d");
    const createdAt = new Date();
    const signed = signReleaseManifest(
      {
        version: values.version,
        artifactUrl: values["artifact-url"],
        artifactSha256: digest.sha256,
        artifactSize: digest.size,
        notes: values.notes ?? "",
        createdAt,
        expiresAt: new Date(createdAt.getTime() + lifetimeMs),
        allowDowngrade: values["allow-downgrade"] ?? false,
      },
      readPrivateKey(values.key),
    );
    const json = toJsonString(SignedReleaseManifestSchema, signed, { prettySpaces: 2 });
    if (values.out) writeFileSync(values.out, `${json}\n`);
    else console.log(json);
    return;
  }
  fail(`unknown command "release ${command}"`);
}

main(process.argv.slice(2));
