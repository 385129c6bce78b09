import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Command, CommandSchema } from "../../gen/agentgateway/v1/control_pb.js";
import type { SignedReleaseManifest } from "../../gen/agentgateway/v1/release_pb.js";
import type { StoredCommand } from "./command-store.js";

/** The stored body of a PeerRevoked command (the payload only; sequence and id come on send). */
export function peerRevokedBody(agent: { id: string; identityPublicKey: Uint8Array; revokedAt: Date }): Uint8Array {
  return toBinary(
    CommandSchema,
    create(CommandSchema, {
      payload: {
        case: "peerRevoked",
        value: { agentId: agent.id, identityPublicKey: agent.identityPublicKey, revokedAt: timestampFromDate(agent.revokedAt) },
      },
    }),
  );
}

/** The Command to put on the wire for a stored one (its body, or a tenant-wide notice's). */
export function toWireCommand(stored: StoredCommand, body: Uint8Array | undefined = stored.body): Command {
  if (!body) throw new Error(`command ${stored.commandId} has no body`);
  const command = fromBinary(CommandSchema, body);
  command.sequence = BigInt(stored.sequence);
  command.commandId = stored.commandId;
  command.createdAt = timestampFromDate(stored.createdAt);
  return command;
}

/** The stored body of a RolloutDirective command. */
export function rolloutDirectiveBody(input: { rolloutId: string; wave: number; signedManifest: SignedReleaseManifest }): Uint8Array {
  return toBinary(
    CommandSchema,
    create(CommandSchema, {
      payload: { case: "rollout", value: { rolloutId: input.rolloutId, wave: input.wave, manifest: input.signedManifest } },
    }),
  );
}
