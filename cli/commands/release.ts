/**
 * `agwctl release keygen|sign` (offline: the private release key never meets the gateway) and
 * `agwctl release-keys register|list|revoke` (ReleaseKeyService).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { create, toJsonString } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  ListReleaseKeysResponseSchema,
  type ReleaseKey,
  ReleaseKeyService,
  RegisterReleaseKeyResponseSchema,
  RevokeReleaseKeyResponseSchema,
} from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { examples, handle } from "../command-table.js";
import { usage } from "../errors.js";
import { durationFlag, idArg } from "../flags.js";
import type { Io } from "../output.js";
import { DEFAULT_MANIFEST_LIFETIME_MS, digestArtifact, signReleaseManifest } from "../release.js";
import { type Cell, relativeTime, renderTable } from "../table.js";
import { dateOf } from "./agent-view.js";

function readPrivateKey(path: string): Uint8Array {
  const hex = readFileSync(path, "utf8").trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw usage(`${path} does not hold a 32-byte hex private key`);
  return new Uint8Array(Buffer.from(hex, "hex"));
}

interface SignOptions {
  key: string;
  version: string;
  artifactUrl: string;
  artifact?: string;
  sha256?: string;
  size?: string;
  notes?: string;
  expiresIn?: string;
  allowDowngrade?: boolean;
  out?: string;
}

function registerOffline(program: Command, io: Io): void {
  const release = program.command("release").description("Release signing, offline: make a signing key and sign release manifests for rollouts.");

  const keygen = release
    .command("keygen")
    .requiredOption("--out <file>", "where to write the private key (hex, mode 0600; never overwritten)")
    .description("Create an ed25519 release signing key. Prints the public key (hex) to register with `agwctl release-keys register`.");
  examples(keygen, "agwctl release keygen --out release.key");
  handle<{ out: string }>(keygen, io, {
    rpcs: [],
    async run(run, _args, o) {
      const pair = generateKeyPair();
      writeFileSync(o.out, `${Buffer.from(pair.privateKey).toString("hex")}\n`, { mode: 0o600, flag: "wx" });
      const publicKey = Buffer.from(pair.publicKey).toString("hex");
      run.out.value({ publicKey, privateKeyFile: o.out }, { text: () => publicKey, ids: () => [publicKey] });
      run.out.note(
        `Private key written to ${o.out}; keep it offline. Register the public key: agwctl release-keys register --name NAME --public-key ${publicKey}`,
      );
    },
  });

  const sign = release
    .command("sign")
    .requiredOption("--key <file>", "the private release key from `release keygen`")
    .requiredOption("--version <version>", "the release's version, e.g. 2.0.0")
    .requiredOption("--artifact-url <url>", "where agents' update hooks download the artifact")
    .option("--artifact <file>", "the artifact, to compute its SHA-256 and size")
    .option("--sha256 <hex>", "the artifact's SHA-256 (instead of --artifact)")
    .option("--size <bytes>", "the artifact's size in bytes (with --sha256)")
    .option("--notes <text>", "release notes carried in the manifest")
    .option("--expires-in <duration>", "agents refuse the manifest after this long, e.g. 12h, 90d (default 30d)")
    .option("--allow-downgrade", "let agents install it even when it is not newer than the version they run")
    .option("--out <file>", "write the signed manifest here instead of stdout")
    .description(
      "Sign a release manifest offline. Prints the SignedReleaseManifest as protobuf JSON, ready for `agwctl rollouts create --manifest FILE`. Agents refuse it once expired, and refuse a version not newer than theirs unless it is signed with --allow-downgrade.",
    );
  examples(
    sign,
    "agwctl release sign --key release.key --version 2.0.0 --artifact-url https://releases.example/agent-2.0.0.tgz --artifact agent-2.0.0.tgz --out m.json",
  );
  handle<SignOptions>(sign, io, {
    rpcs: [],
    async run(run, _args, o) {
      let digest: { sha256: Uint8Array; size: bigint };
      if (o.artifact) {
        digest = digestArtifact(readFileSync(o.artifact));
      } else {
        if (!o.sha256 || !/^[0-9a-f]{64}$/i.test(o.sha256) || !o.size || !/^\d+$/.test(o.size)) {
          throw usage("give --artifact FILE, or --sha256 (64 hex characters) and --size (bytes)");
        }
        digest = { sha256: new Uint8Array(Buffer.from(o.sha256, "hex")), size: BigInt(o.size) };
      }
      const lifetimeMs = o.expiresIn === undefined ? DEFAULT_MANIFEST_LIFETIME_MS : durationFlag("--expires-in", o.expiresIn);
      if (!lifetimeMs) throw usage(`--expires-in must be a duration like 12h or 30d, got "${o.expiresIn}"`);
      const createdAt = new Date();
      const signed = signReleaseManifest(
        {
          version: o.version,
          artifactUrl: o.artifactUrl,
          artifactSha256: digest.sha256,
          artifactSize: digest.size,
          notes: o.notes ?? "",
          createdAt,
          expiresAt: new Date(createdAt.getTime() + lifetimeMs),
          allowDowngrade: o.allowDowngrade === true,
        },
        readPrivateKey(o.key),
      );
      const json = toJsonString(SignedReleaseManifestSchema, signed, { prettySpaces: 2 });
      if (o.out) {
        writeFileSync(o.out, `${json}\n`);
        run.out.note(`Signed manifest for ${o.version} written to ${o.out}.`);
      } else if (run.out.format === "yaml") {
        run.out.result(SignedReleaseManifestSchema, signed);
      } else {
        // The manifest is a file format: JSON whatever --format says (table included).
        run.out.line(json);
      }
    },
  });
}

const KEY_HEADERS = ["ID", "NAME", "PUBLIC KEY", "CREATED", "REVOKED"];

function keyRow(k: ReleaseKey): Cell[] {
  return [
    k.id,
    k.name,
    Buffer.from(k.publicKey).toString("hex"),
    relativeTime(dateOf(k.createdAt)),
    k.revokedAt ? { text: relativeTime(dateOf(k.revokedAt)), style: "bad" } : "-",
  ];
}

function registerKeys(program: Command, io: Io): void {
  const keys = program.command("release-keys").description("Release keys: the public keys the gateway accepts release manifests from.");
  const NOT_FOUND = "list release keys with `agwctl release-keys list --all`";

  const register = keys
    .command("register")
    .requiredOption("--name <name>", "a name for operators, e.g. release-2026")
    .requiredOption("--public-key <hex>", "the public key printed by `agwctl release keygen` (64 hex digits)")
    .description("Register a release public key; manifests signed by it become acceptable for rollouts.");
  examples(register, "agwctl release-keys register --name release-2026 --public-key 3b6a…e1");
  handle<{ name: string; publicKey: string }>(register, io, {
    rpcs: [ReleaseKeyService.method.registerReleaseKey],
    async run(run, _args, o) {
      if (!/^[0-9a-f]{64}$/i.test(o.publicKey.trim())) throw usage(`--public-key must be 64 hex digits, got "${o.publicKey}"`);
      const res = await run.client(ReleaseKeyService).registerReleaseKey({ name: o.name, publicKey: new Uint8Array(Buffer.from(o.publicKey.trim(), "hex")) });
      run.out.result(RegisterReleaseKeyResponseSchema, res, {
        text: () => `Registered release key ${res.key?.name ?? ""} (${res.key?.id ?? ""}).`,
        ids: () => [res.key?.id ?? ""],
      });
    },
  });

  const list = keys.command("list").alias("ls").option("--all", "include revoked keys").description("List release keys.");
  examples(list, "agwctl release-keys list", "agwctl release-keys list --all -o json");
  handle<{ all?: boolean }>(list, io, {
    rpcs: [ReleaseKeyService.method.listReleaseKeys],
    async run(run, _args, o) {
      const res = await run.client(ReleaseKeyService).listReleaseKeys({ includeRevoked: o.all === true });
      run.out.result(ListReleaseKeysResponseSchema, create(ListReleaseKeysResponseSchema, res), {
        text: () =>
          res.keys.length ? renderTable(KEY_HEADERS, res.keys.map(keyRow), { width: run.out.width, colour: run.out.colour, fixed: [0] }) : "No release keys.",
        ids: () => res.keys.map((k) => k.id),
      });
    },
  });

  const revoke = keys
    .command("revoke")
    .argument("<id>", "release key ID")
    .description("Revoke a release key: manifests it signed are no longer accepted for new rollouts.");
  examples(revoke, "agwctl release-keys revoke 6f1c…");
  handle(revoke, io, {
    rpcs: [ReleaseKeyService.method.revokeReleaseKey],
    notFound: NOT_FOUND,
    async run(run, [id]) {
      const res = await run.client(ReleaseKeyService).revokeReleaseKey({ id: idArg("release key ID", id) });
      run.out.result(RevokeReleaseKeyResponseSchema, res, {
        text: () => `Revoked release key ${res.key?.name ?? ""} (${id}).`,
        ids: () => [res.key?.id ?? ""],
      });
    },
  });
}

/** Registers the release and release-keys groups. */
export function registerRelease(program: Command, io: Io): void {
  registerOffline(program, io);
  registerKeys(program, io);
}
