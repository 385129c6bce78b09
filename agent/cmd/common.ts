import { resolve } from "node:path";
import type { Logger } from "pino";
import { ExitError, EXIT } from "../lib/errors.js";
import { usageError } from "../lib/flags.js";
import { createAgentLogger, LOG_LEVELS } from "../lib/logger.js";
import { type AgentStateFile, StateStore } from "../lib/state.js";
import { normalizePin, type TrustOptions, TrustError } from "../../client/transport.js";

/** Default state directory (systemd's StateDirectory=agw-agent). */
export const DEFAULT_STATE_DIR = "/var/lib/agw-agent";

/** Flag definitions shared by the commands that talk to the gateway. */
export const TRUST_FLAGS = {
  server: { type: "string" },
  "ca-file": { type: "string" },
  "ca-pin": { type: "string", multiple: true },
  "system-ca": { type: "boolean" },
  "allow-insecure-http": { type: "boolean" },
  protocol: { type: "string" },
} as const;

/** Flags every command has. */
export const COMMON_FLAGS = {
  "state-dir": { type: "string" },
  "log-level": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The state directory from --state-dir, AGW_AGENT_STATE_DIR or the default. */
export function stateDirOf(flag: string | undefined): string {
  return resolve(flag ?? process.env.AGW_AGENT_STATE_DIR ?? DEFAULT_STATE_DIR);
}

/** A logger at --log-level (default info). */
export function loggerOf(level: string | undefined): Logger {
  const chosen = level ?? process.env.AGW_AGENT_LOG_LEVEL ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(chosen)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}`);
  return createAgentLogger(chosen);
}

/** Trust settings: flags given now win over what enrollment stored. */
export function trustOf(
  values: { "ca-file"?: string; "ca-pin"?: string[]; "system-ca"?: boolean; "allow-insecure-http"?: boolean },
  state?: AgentStateFile,
): TrustOptions {
  try {
    const pins = values["ca-pin"]?.length ? values["ca-pin"].map(normalizePin) : (state?.tls.pins ?? []);
    const caFile = values["ca-file"] ? resolve(values["ca-file"]) : state?.tls.caFile;
    return {
      ...(caFile ? { caFile } : {}),
      pins,
      systemCa: values["system-ca"] ?? false,
      allowInsecureHttp: values["allow-insecure-http"] ?? state?.allowInsecureHttp ?? false,
    };
  } catch (err) {
    if (err instanceof TrustError) throw usageError(err.message);
    throw err;
  }
}

/** --protocol connect|grpc. */
export function protocolOf(value: string | undefined): "connect" | "grpc" {
  if (value === undefined || value === "connect") return "connect";
  if (value === "grpc") return "grpc";
  throw usageError("--protocol must be connect or grpc");
}

/** Opens an enrolled state directory; refuses (78) a revoked one without any network call. */
export async function openEnrolled(dir: string): Promise<{ store: StateStore; state: AgentStateFile }> {
  const store = new StateStore(dir);
  await store.init();
  const state = await store.load();
  if (!state)
    throw new ExitError(EXIT.IDENTITY_UNUSABLE, `${dir} holds no enrolled agent: run "agw-agent enroll --server URL --token TOKEN --state-dir ${dir}" first`);
  if (state.revoked) {
    throw new ExitError(
      EXIT.REVOKED,
      `agent ${state.agentId} was revoked at ${state.revoked.at} (${state.revoked.reason}); refusing to start. An operator must un-revoke it, or enroll a new identity in an empty state directory.`,
    );
  }
  return { store, state };
}

/** "1h 2m 3s" for a span in ms. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [h ? `${h}h` : "", m ? `${m}m` : "", `${s % 60}s`].filter(Boolean);
  return parts.join(" ");
}
