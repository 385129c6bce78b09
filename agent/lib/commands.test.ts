import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AckStatus, type Command, CommandSchema, RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { ReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { generateKeyPair, sign } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { type CommandEnvironment, CommandProcessor } from "./commands.js";
import { newState } from "./state.js";

const ROLLOUT_ID = "3f2b9c1e-0d4a-4b6f-8e7d-1a2b3c4d5e6f";
const release = generateKeyPair();
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-commands-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface RolloutOptions {
  signer?: { privateKey: Uint8Array; publicKey: Uint8Array };
  allowDowngrade?: boolean;
  /** Ms from now (negative: already expired). */
  expiresInMs?: number;
  rolloutId?: string;
  wave?: number;
}

function rolloutCommand(sequence: bigint, version: string, options: RolloutOptions = {}): Command {
  const signer = options.signer ?? release;
  const manifest = toBinary(
    ReleaseManifestSchema,
    create(ReleaseManifestSchema, {
      version,
      artifactUrl: `https://releases.example.com/agw-agent-${version}.tar.gz`,
      artifactSha256: new Uint8Array(32).fill(0xab),
      artifactSize: 1234n,
      notes: "test",
      createdAt: timestampFromMs(Date.now() - 7_200_000),
      expiresAt: timestampFromMs(Date.now() + (options.expiresInMs ?? 3_600_000)),
      allowDowngrade: options.allowDowngrade ?? false,
    }),
  );
  return create(CommandSchema, {
    sequence,
    commandId: crypto.randomUUID(),
    payload: {
      case: "rollout",
      value: {
        rolloutId: options.rolloutId ?? ROLLOUT_ID,
        wave: options.wave ?? 1,
        manifest: { manifest, signature: sign(signer.privateKey, releaseManifestTranscript(manifest)), releasePublicKey: signer.publicKey },
      },
    },
  });
}

/** A processor wired to recorders instead of a stream. */
function harness(options: { updateCommand?: string; version?: string } = {}) {
  const state = newState({
    server: "http://127.0.0.1:1",
    agentId: crypto.randomUUID(),
    tenantId: crypto.randomUUID(),
    name: "t",
    labels: {},
    verificationCode: "X",
    tls: { pins: [] },
    releaseKeys: [],
  });
  const acks: Array<{ sequence: bigint; status: AckStatus; reason: string }> = [];
  const progress: Array<{ stage: RolloutStage; message: string }> = [];
  const persisted: string[] = [];
  let version = options.version ?? "1.0.0";
  const env: CommandEnvironment = {
    state,
    persist: async () => {
      persisted.push(state.lastAppliedSequence);
    },
    releaseKeys: [release.publicKey],
    ...(options.updateCommand ? { updateCommand: options.updateCommand } : {}),
    updateTimeoutMs: 10_000,
    stateDir: dir,
    currentVersion: () => version,
    installedVersion: async (hookSaid, manifestVersion) => {
      version = hookSaid ?? manifestVersion;
      return version;
    },
    progress: (_id, stage, message) => progress.push({ stage, message }),
    ack: (sequence, status, reason) => {
      // The outcome must be on disk before the ack leaves.
      expect(BigInt(persisted.at(-1) ?? "0")).toBeGreaterThanOrEqual(sequence);
      acks.push({ sequence, status, reason });
    },
    logger: pino({ level: "silent" }),
  };
  return { processor: new CommandProcessor(env), state, acks, progress, version: () => version };
}

describe("CommandProcessor", () => {
  it("verifies a rollout, runs the hook with the manifest, and reports the new version", async () => {
    const out = join(dir, "hook.json");
    const h = harness({ updateCommand: `cat > ${out}; echo "installing $AGW_RELEASE_VERSION sha $AGW_ARTIFACT_SHA256" >&2; echo version=1.5.0` });
    h.processor.submit(rolloutCommand(1n, "1.5.0"));
    await h.processor.idle();
    expect(h.progress.map((p) => RolloutStage[p.stage])).toEqual(["RECEIVED", "VERIFIED", "APPLYING", "SUCCEEDED"]);
    expect(h.acks).toEqual([{ sequence: 1n, status: AckStatus.OK, reason: "" }]);
    expect(h.version()).toBe("1.5.0");
    const stdin = JSON.parse(readFileSync(out, "utf8")) as Record<string, string>;
    expect(stdin).toMatchObject({ rolloutId: ROLLOUT_ID, version: "1.5.0", artifactSha256: "ab".repeat(32), artifactSize: "1234" });
    expect(h.state.lastAppliedSequence).toBe("1");
  });

  it("refuses a bad signature: FAILED progress and ack, and the hook never runs", async () => {
    const marker = join(dir, "ran");
    const h = harness({ updateCommand: `touch ${marker}` });
    const command = rolloutCommand(1n, "1.5.0");
    const signed = command.payload.case === "rollout" ? command.payload.value.manifest : undefined;
    if (signed) signed.signature[0] = (signed.signature[0] ?? 0) ^ 1;
    h.processor.submit(command);
    await h.processor.idle();
    expect(h.progress.map((p) => RolloutStage[p.stage])).toEqual(["RECEIVED", "FAILED"]);
    expect(h.acks[0]?.status).toBe(AckStatus.FAILED);
    expect(h.acks[0]?.reason).toMatch(/does not verify/);
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a manifest signed by a key that is not pinned", async () => {
    const marker = join(dir, "ran");
    const h = harness({ updateCommand: `touch ${marker}` });
    h.processor.submit(rolloutCommand(1n, "1.5.0", { signer: generateKeyPair() }));
    await h.processor.idle();
    expect(h.acks[0]?.status).toBe(AckStatus.FAILED);
    expect(h.acks[0]?.reason).toMatch(/not pinned/);
    expect(existsSync(marker)).toBe(false);
  });

  it("reports a failing hook with its exit code and stderr", async () => {
    const h = harness({ updateCommand: "echo disk full >&2; exit 3" });
    h.processor.submit(rolloutCommand(1n, "1.5.0"));
    await h.processor.idle();
    expect(h.progress.at(-1)).toEqual({ stage: RolloutStage.FAILED, message: "the update hook exited with 3: disk full" });
    expect(h.acks[0]?.status).toBe(AckStatus.FAILED);
    expect(h.version()).toBe("1.0.0");
  });

  it("fails a rollout when no update hook is configured", async () => {
    const h = harness();
    h.processor.submit(rolloutCommand(1n, "1.5.0"));
    await h.processor.idle();
    expect(h.acks[0]).toMatchObject({ status: AckStatus.FAILED, reason: "no --update-command is configured on this agent" });
  });

  it("acks a redelivered sequence again with the recorded outcome, without applying it twice", async () => {
    const count = join(dir, "count");
    const h = harness({ updateCommand: `echo x >> ${count}; exit 1` });
    h.processor.submit(rolloutCommand(4n, "1.5.0"));
    await h.processor.idle();
    h.processor.submit(rolloutCommand(4n, "1.5.0"));
    h.processor.submit(rolloutCommand(2n, "1.5.0"));
    await h.processor.idle();
    expect(readFileSync(count, "utf8").trim().split("\n")).toHaveLength(1);
    expect(h.acks.map((a) => [a.sequence, AckStatus[a.status]])).toEqual([
      [4n, "FAILED"],
      [4n, "FAILED"],
      [2n, "OK"],
    ]);
  });

  it("records revoked peers and acks OK; acks unknown kinds UNSUPPORTED", async () => {
    const h = harness();
    const peer = generateKeyPair();
    h.processor.submit(
      create(CommandSchema, {
        sequence: 1n,
        payload: { case: "peerRevoked", value: { agentId: "peer-1", identityPublicKey: peer.publicKey, revokedAt: timestampNow() } },
      }),
    );
    h.processor.submit(create(CommandSchema, { sequence: 2n })); // a payload kind from a newer gateway decodes as "no case"
    await h.processor.idle();
    expect(h.state.revokedPeers).toMatchObject([{ agentId: "peer-1", publicKey: Buffer.from(peer.publicKey).toString("hex") }]);
    expect(h.acks.map((a) => AckStatus[a.status])).toEqual(["OK", "UNSUPPORTED"]);
    expect(h.state.lastAppliedSequence).toBe("2");
  });

  it("reports SUCCEEDED without running the hook when the target already runs", async () => {
    const marker = join(dir, "ran");
    const h = harness({ updateCommand: `touch ${marker}`, version: "1.5.0" });
    h.processor.submit(rolloutCommand(1n, "1.5.0"));
    await h.processor.idle();
    expect(h.progress.at(-1)?.stage).toBe(RolloutStage.SUCCEEDED);
    expect(existsSync(marker)).toBe(false);
  });
  it("refuses an old signed manifest over a newer running version (a replayed rollback), without running the hook", async () => {
    const marker = join(dir, "ran");
    const h = harness({ updateCommand: `touch ${marker}`, version: "1.5.0" });
    h.processor.submit(rolloutCommand(1n, "1.4.0"));
    await h.processor.idle();
    expect(h.progress.map((p) => RolloutStage[p.stage])).toEqual(["RECEIVED", "FAILED"]);
    expect(h.acks[0]).toEqual({
      sequence: 1n,
      status: AckStatus.FAILED,
      reason: "DOWNGRADE_REFUSED: release 1.4.0 is not newer than the running 1.5.0; a downgrade needs a manifest signed with allow_downgrade",
    });
    expect(h.progress.at(-1)?.message).toBe(h.acks[0]?.reason);
    expect(existsSync(marker)).toBe(false);
    expect(h.version()).toBe("1.5.0");
  });

  it("refuses an expired manifest, without running the hook", async () => {
    const marker = join(dir, "ran");
    const h = harness({ updateCommand: `touch ${marker}` });
    h.processor.submit(rolloutCommand(1n, "1.5.0", { expiresInMs: -1000 }));
    await h.processor.idle();
    expect(h.acks[0]?.status).toBe(AckStatus.FAILED);
    expect(h.acks[0]?.reason).toMatch(/^MANIFEST_EXPIRED: manifest for 1\.5\.0 expired at /);
    expect(existsSync(marker)).toBe(false);
  });

  it("installs a downgrade the signed manifest itself marks as deliberate, and tells the hook", async () => {
    const out = join(dir, "env");
    const h = harness({ updateCommand: `echo "$AGW_ALLOW_DOWNGRADE $AGW_CURRENT_VERSION" > ${out}; echo 1.4.0`, version: "1.5.0" });
    h.processor.submit(rolloutCommand(1n, "1.4.0", { allowDowngrade: true }));
    await h.processor.idle();
    expect(h.acks[0]).toEqual({ sequence: 1n, status: AckStatus.OK, reason: "" });
    expect(h.version()).toBe("1.4.0");
    expect(readFileSync(out, "utf8").trim()).toBe("1 1.5.0");
  });

  it("hands the hook only signed or validated values: a bad rollout id or wave never reaches it", async () => {
    const out = join(dir, "env");
    const h = harness({ updateCommand: `printf '%s|%s' "$AGW_ROLLOUT_ID" "$AGW_ROLLOUT_WAVE" > ${out}; echo 1.5.0` });
    h.processor.submit(rolloutCommand(1n, "1.5.0", { rolloutId: "$(touch /tmp/pwned)" }));
    h.processor.submit(rolloutCommand(2n, "1.5.0", { wave: 4_000_000_000 }));
    await h.processor.idle();
    // Refused before any progress report: the id is not one to report under.
    expect(h.progress).toEqual([]);
    expect(h.acks.map((a) => [a.sequence, AckStatus[a.status], a.reason])).toEqual([
      [1n, "FAILED", "DIRECTIVE_INVALID: the rollout directive's rollout_id is not a UUID"],
      [2n, "FAILED", "DIRECTIVE_INVALID: the rollout directive's wave 4000000000 is not between 0 and 99"],
    ]);
    expect(existsSync(out)).toBe(false);
    h.processor.submit(rolloutCommand(3n, "1.5.0", { wave: 2 }));
    await h.processor.idle();
    expect(h.acks.at(-1)?.status).toBe(AckStatus.OK);
    expect(readFileSync(out, "utf8")).toBe(`${ROLLOUT_ID}|2`);
  });
});
