import { fromBinary } from "@bufbuild/protobuf";
import { AckStatus, RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentStatus } from "../../gen/agentgateway/v1/ingest_pb.js";
import { ReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { gatewayClient, withSession } from "../../agent/lib/direct.js";
import { constantTimeEqual } from "../../client/protocol/secrets.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { releaseManifestTranscript } from "../../client/protocol/transcript.js";
import { enrollAgent, type EnrolledAgent } from "./agents.js";
import type { TestGateway } from "./gateway.js";
import { openStream, type TestStream } from "./stream.js";

/** How a simulated agent behaves when told to install a release. */
export interface SimBehaviour {
  pinnedReleaseKeys: Uint8Array[];
  /** Report FAILED instead of installing. */
  failInstall?: boolean;
  /** Never answer (simulates a hung update: the verify window catches it). */
  hang?: boolean;
}

/**
 * An in-process agent on a real ControlStream that applies rollout directives the way the
 * reference agent does: verify the manifest against pinned keys, report progress, "restart" on
 * the new version and say so in a heartbeat. Used by rollout tests that need many agents.
 */
export class SimAgent {
  version = "1.0.0";
  private stream: TestStream | undefined;
  private running = false;

  private constructor(
    readonly gw: TestGateway,
    readonly enrolled: EnrolledAgent,
    public behaviour: SimBehaviour,
  ) {}

  static async start(gw: TestGateway, behaviour: SimBehaviour, name?: string): Promise<SimAgent> {
    const agent = new SimAgent(gw, await enrollAgent(gw, name), behaviour);
    await agent.heartbeat();
    return agent;
  }

  get id(): string {
    return this.enrolled.registration.agentId;
  }

  /** Sends a heartbeat with the version it runs. */
  async heartbeat(): Promise<void> {
    await gatewayClient(this.gw.transport).uploadHeartbeat({ status: AgentStatus.HEALTHY, agentVersion: this.version }, withSession(this.enrolled.session));
  }

  /** Opens the stream and applies commands until stopped. */
  async connect(): Promise<void> {
    const stream = openStream(gatewayClient(this.gw.transport), this.enrolled.session);
    this.stream = stream;
    const welcome = await stream.next();
    if (welcome.kind.case !== "welcome") throw new Error(`expected welcome, got ${welcome.kind.case}`);
    this.running = true;
    void this.loop(stream);
  }

  disconnect(): void {
    this.running = false;
    this.stream?.close();
    this.stream = undefined;
  }

  private async loop(stream: TestStream): Promise<void> {
    while (this.running) {
      let message: Awaited<ReturnType<TestStream["next"]>>;
      try {
        message = await stream.next(60_000);
      } catch {
        return;
      }
      if (message.kind.case !== "command") continue;
      const command = message.kind.value;
      if (command.payload.case !== "rollout") {
        stream.send({ kind: { case: "ack", value: { sequence: command.sequence, status: AckStatus.OK, reason: "" } } });
        continue;
      }
      const directive = command.payload.value;
      const progress = (stage: RolloutStage, text = "") =>
        stream.send({ kind: { case: "rolloutProgress", value: { rolloutId: directive.rolloutId, stage, message: text } } });
      if (this.behaviour.hang) continue;
      progress(RolloutStage.RECEIVED);
      const signed = directive.manifest;
      const trusted =
        signed !== undefined &&
        this.behaviour.pinnedReleaseKeys.some((k) => constantTimeEqual(k, signed.releasePublicKey)) &&
        verifyEd25519(signed.releasePublicKey, releaseManifestTranscript(signed.manifest), signed.signature);
      if (!trusted || !signed) {
        progress(RolloutStage.FAILED, "manifest signature does not verify against the pinned release keys");
        stream.send({ kind: { case: "ack", value: { sequence: command.sequence, status: AckStatus.FAILED, reason: "untrusted manifest" } } });
        continue;
      }
      progress(RolloutStage.VERIFIED);
      if (this.behaviour.failInstall) {
        progress(RolloutStage.FAILED, "update hook exited with status 1");
        stream.send({ kind: { case: "ack", value: { sequence: command.sequence, status: AckStatus.FAILED, reason: "update hook failed" } } });
        continue;
      }
      progress(RolloutStage.APPLYING);
      this.version = fromBinary(ReleaseManifestSchema, signed.manifest).version;
      progress(RolloutStage.SUCCEEDED);
      stream.send({ kind: { case: "ack", value: { sequence: command.sequence, status: AckStatus.OK, reason: "" } } });
      await this.heartbeat().catch(() => {});
    }
  }
}
