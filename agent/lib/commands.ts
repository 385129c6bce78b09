import { spawn } from "node:child_process";
import type { Logger } from "pino";
import { AckStatus, type Command, type RolloutDirective, RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { checkDirective, checkNewer, ManifestError, type VerifiedManifest, verifyReleaseManifest } from "./manifest.js";
import { type AckName, type AgentStateFile, recordApplied, recordRevokedPeer } from "./state.js";

/** How a command ended, as acknowledged to the gateway. */
export interface CommandResult {
  status: AckStatus.OK | AckStatus.FAILED | AckStatus.UNSUPPORTED;
  reason: string;
}

/** What the processor needs from the agent around it. */
export interface CommandEnvironment {
  /** The state file (mutated in place, then persisted). */
  state: AgentStateFile;
  persist(): Promise<void>;
  /** Pinned release keys (flags and state file). */
  releaseKeys: readonly Uint8Array[];
  /** Shell command run with the verified manifest (undefined: rollouts fail). */
  updateCommand?: string;
  updateTimeoutMs: number;
  stateDir: string;
  /** The version running now. */
  currentVersion(): string;
  /** After a successful rollout: the version that now runs (re-reads --version-file). */
  installedVersion(hookSaid: string | undefined, manifestVersion: string): Promise<string>;
  /** Reports rollout progress on the ControlStream. */
  progress(rolloutId: string, stage: RolloutStage, message: string): void;
  /** Sends the ack on the ControlStream. */
  ack(sequence: bigint, status: AckStatus, reason: string): void;
  logger: Logger;
}

const ACK_NAME: Record<CommandResult["status"], AckName> = {
  [AckStatus.OK]: "OK",
  [AckStatus.FAILED]: "FAILED",
  [AckStatus.UNSUPPORTED]: "UNSUPPORTED",
};
const ACK_STATUS: Record<AckName, CommandResult["status"]> = { OK: AckStatus.OK, FAILED: AckStatus.FAILED, UNSUPPORTED: AckStatus.UNSUPPORTED };

/** Command kinds this agent understands (sent in the hello). */
export const CAPABILITIES = ["peer_revoked", "rollout"];

/**
 * Applies commands one at a time, in arrival order, exactly once per sequence: a redelivered
 * sequence (the gateway resends until it sees the ack) is acked again with the recorded
 * outcome and not applied twice. The outcome is persisted before the ack is sent, so a crash
 * in between cannot apply a command twice either (docs/protocol.md, "ControlStream").
 */
export class CommandProcessor {
  private queue: Promise<void> = Promise.resolve();
  private readonly queued = new Set<bigint>();

  constructor(private readonly env: CommandEnvironment) {}

  /** Takes a command from the stream; resolves when it is queued (not applied). */
  submit(command: Command): void {
    const seq = command.sequence;
    if (seq <= BigInt(this.env.state.lastAppliedSequence)) {
      const recorded = this.env.state.recentAcks.find((a) => a.sequence === seq.toString());
      this.env.logger.debug({ sequence: seq.toString() }, "command already applied; acking again");
      this.env.ack(seq, recorded ? ACK_STATUS[recorded.status] : AckStatus.OK, recorded?.reason ?? "");
      return;
    }
    if (this.queued.has(seq)) return; // redelivered while still being applied: its ack will come
    this.queued.add(seq);
    this.queue = this.queue.then(async () => {
      try {
        const result = await this.apply(command);
        recordApplied(this.env.state, seq, ACK_NAME[result.status], result.reason);
        await this.env.persist();
        this.env.ack(seq, result.status, result.reason);
      } catch (err) {
        // Persisting failed: do not ack, the gateway redelivers and we try again.
        this.env.logger.error({ err, sequence: seq.toString() }, "could not record a command's outcome; it will be redelivered");
      } finally {
        this.queued.delete(seq);
      }
    });
  }

  /** Resolves when every submitted command has been handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Applies one command (no dedup, no persistence: see submit). */
  async apply(command: Command): Promise<CommandResult> {
    const payload = command.payload;
    switch (payload.case) {
      case "peerRevoked": {
        const peer = payload.value;
        recordRevokedPeer(this.env.state, {
          agentId: peer.agentId,
          publicKey: Buffer.from(peer.identityPublicKey).toString("hex"),
          ...(peer.revokedAt ? { revokedAt: new Date(Number(peer.revokedAt.seconds) * 1000).toISOString() } : {}),
        });
        this.env.logger.warn({ peerAgentId: peer.agentId, sequence: command.sequence.toString() }, "peer agent revoked: no longer trusting its identity");
        return { status: AckStatus.OK, reason: "" };
      }
      case "rollout":
        return await this.rollout(payload.value);
      default:
        this.env.logger.warn({ sequence: command.sequence.toString(), commandId: command.commandId }, "command of a kind this agent does not understand");
        return { status: AckStatus.UNSUPPORTED, reason: "this agent does not understand this command kind" };
    }
  }

  private async rollout(directive: RolloutDirective): Promise<CommandResult> {
    const id = directive.rolloutId;
    try {
      checkDirective(id, directive.wave);
    } catch (err) {
      // No progress report: an id that is not a UUID is not one to report under.
      const reason = (err as ManifestError).reason;
      this.env.logger.error({ reason }, "rollout directive refused");
      return { status: AckStatus.FAILED, reason };
    }
    const fail = (reason: string): CommandResult => {
      this.env.progress(id, RolloutStage.FAILED, reason);
      this.env.logger.error({ rolloutId: id, reason }, "rollout failed");
      return { status: AckStatus.FAILED, reason };
    };
    this.env.progress(id, RolloutStage.RECEIVED, "");
    const current = this.env.currentVersion();
    let verified: VerifiedManifest;
    try {
      verified = verifyReleaseManifest(directive.manifest, this.env.releaseKeys);
      if (verified.plain.version !== current) checkNewer(verified, current);
    } catch (err) {
      return fail(err instanceof ManifestError ? err.reason : `MANIFEST_INVALID: manifest check failed: ${(err as Error).message}`);
    }
    const target = verified.plain.version;
    this.env.progress(id, RolloutStage.VERIFIED, `release ${target} signed by a pinned key`);
    if (current === target) {
      this.env.progress(id, RolloutStage.SUCCEEDED, `already running ${target}`);
      return { status: AckStatus.OK, reason: "" };
    }
    if (!this.env.updateCommand) return fail("no --update-command is configured on this agent");
    this.env.progress(id, RolloutStage.APPLYING, `running the update hook for ${target}`);
    this.env.logger.info({ rolloutId: id, wave: directive.wave, version: target }, "running the update hook");
    const outcome = await runHook(
      this.env.updateCommand,
      JSON.stringify({ rolloutId: id, wave: directive.wave, ...verified.plain }),
      {
        AGW_ROLLOUT_ID: id,
        AGW_ROLLOUT_WAVE: String(directive.wave),
        AGW_RELEASE_VERSION: target,
        AGW_ARTIFACT_URL: verified.plain.artifactUrl,
        AGW_ARTIFACT_SHA256: verified.plain.artifactSha256,
        AGW_ARTIFACT_SIZE: verified.plain.artifactSize,
        AGW_ALLOW_DOWNGRADE: verified.manifest.allowDowngrade ? "1" : "0",
        AGW_CURRENT_VERSION: current,
        AGW_STATE_DIR: this.env.stateDir,
      },
      this.env.updateTimeoutMs,
    );
    if (!outcome.ok) return fail(outcome.reason);
    const running = await this.env.installedVersion(outcome.version, target);
    if (running !== target) return fail(`the update hook succeeded but the agent reports version ${running}, not ${target}`);
    this.env.progress(id, RolloutStage.SUCCEEDED, `now running ${running}`);
    this.env.logger.info({ rolloutId: id, version: running }, "rollout applied");
    return { status: AckStatus.OK, reason: "" };
  }
}

/** Result of the operator's update hook. */
type HookOutcome = { ok: true; version: string | undefined } | { ok: false; reason: string };

const VERSION_LINE = /^(?:version\s*[=:]\s*)?(v?\d[A-Za-z0-9.+_-]*)$/i;

/**
 * Runs the update hook with `/bin/sh -c`, the manifest as JSON on stdin and as AGW_* env
 * vars. Exit 0 is success; a last stdout line that looks like a version ("1.5.0" or
 * "version=1.5.0") is taken as the version now installed.
 */
export async function runHook(command: string, stdin: string, env: Record<string, string>, timeoutMs: number): Promise<HookOutcome> {
  return await new Promise<HookOutcome>((resolve) => {
    const child = spawn("/bin/sh", ["-c", command], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout = (stdout + d).slice(-65_536);
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    child.stdin.on("error", () => {}); // a hook that does not read stdin is fine
    child.stdin.end(stdin);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }, timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `could not start the update hook: ${err.message}` });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const tail = stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 600);
      if (timedOut) return resolve({ ok: false, reason: `the update hook timed out after ${Math.round(timeoutMs / 1000)} s` });
      if (code !== 0) return resolve({ ok: false, reason: `the update hook exited with ${code ?? signal}${tail ? `: ${tail}` : ""}` });
      const last =
        stdout
          .trim()
          .split("\n")
          .map((l) => l.trim())
          .filter(Boolean)
          .at(-1) ?? "";
      const match = VERSION_LINE.exec(last);
      resolve({ ok: true, version: match?.[1] && match[1].length <= 64 ? match[1].replace(/^v(?=\d)/, "") : undefined });
    });
  });
}
