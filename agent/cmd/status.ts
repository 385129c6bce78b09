import { promises as fs } from "node:fs";
import { parseArgs } from "node:util";
import { EXIT } from "../lib/errors.js";
import { FILES, StateStore } from "../lib/state.js";
import { COMMON_FLAGS, humanDuration, stateDirOf } from "./common.js";

export const STATUS_USAGE = `agw-agent status [--state-dir DIR] [--json]
  Shows the local state and the running agent's last contact. Never shows the key or tokens.`;

/** `agw-agent status`: prints what the state directory knows, without secrets or network calls. */
export async function status(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...COMMON_FLAGS, json: { type: "boolean" } }, strict: true });
  if (values.help) {
    console.log(STATUS_USAGE);
    return EXIT.OK;
  }
  const dir = stateDirOf(values["state-dir"]);
  const store = new StateStore(dir);
  const state = await store.load().catch(() => undefined);
  if (!state) {
    if (values.json) console.log(JSON.stringify({ enrolled: false, stateDir: dir }));
    else console.log(`${dir}: not enrolled`);
    return EXIT.IDENTITY_UNUSABLE;
  }
  const session = await store.loadSession();
  const runtime = await store.loadStatus();
  const running = runtime ? isAlive(runtime.pid) : false;
  const outbox = await outboxSize(store.path(FILES.outbox));
  const report = {
    enrolled: true,
    stateDir: dir,
    agentId: state.agentId,
    tenantId: state.tenantId,
    name: state.name,
    server: state.server,
    trust: state.server.startsWith("https:") ? { caFile: state.tls.caFile ?? null, pins: state.tls.pins.length } : "h2c (no TLS)",
    verificationCode: state.verificationCode,
    state: state.revoked ? "REVOKED" : state.approvedAt ? "APPROVED" : "AWAITING_APPROVAL",
    revoked: state.revoked ?? null,
    registeredAt: state.registeredAt,
    approvedAt: state.approvedAt ?? null,
    lastAppliedSequence: state.lastAppliedSequence,
    revokedPeers: state.revokedPeers.length,
    releaseKeys: state.releaseKeys.length,
    sessionExpiresAt: session?.expiresAt ?? null,
    running,
    process: runtime ? { ...runtime, running } : null,
    outbox,
  };
  if (values.json) {
    console.log(JSON.stringify(report, null, 2));
    return EXIT.OK;
  }
  const now = Date.now();
  const ago = (iso: string | undefined) => (iso ? `${iso} (${humanDuration(now - Date.parse(iso))} ago)` : "never");
  const lines = [
    `agent:          ${state.agentId} ("${state.name}", tenant ${state.tenantId})`,
    `state:          ${report.state}${state.revoked ? ` at ${state.revoked.at}: ${state.revoked.reason}` : ""}`,
    `gateway:        ${state.server}  trust: ${typeof report.trust === "string" ? report.trust : `${state.tls.caFile ? `CA ${state.tls.caFile}` : ""}${state.tls.pins.length ? ` ${state.tls.pins.length} pin(s)` : ""}`}`,
    `code:           ${state.verificationCode}`,
    `session until:  ${session?.expiresAt ?? "none"}`,
    `running:        ${running ? `yes (pid ${runtime?.pid}, ${runtime?.connected ? `connected to ${runtime.replicaId ?? "?"}` : "not connected"})` : "no"}`,
    `last contact:   ${ago(runtime?.lastContactAt)}`,
    ...(runtime?.lastError ? [`last error:     ${runtime.lastError}`] : []),
    `version:        ${runtime?.agentVersion ?? "?"}`,
    `commands:       last applied sequence ${state.lastAppliedSequence}, ${state.revokedPeers.length} revoked peer(s) recorded`,
    `outbox:         ${outbox.files} file(s), ${outbox.bytes} bytes waiting${runtime?.outbox?.droppedTotal ? `, ${runtime.outbox.droppedTotal} dropped this run` : ""}`,
  ];
  console.log(lines.join("\n"));
  return EXIT.OK;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function outboxSize(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  try {
    for (const name of await fs.readdir(dir)) {
      if (!name.endsWith(".jsonl") || name.startsWith(".")) continue;
      files++;
      bytes += (await fs.stat(`${dir}/${name}`)).size;
    }
  } catch {
    // no outbox yet
  }
  return { files, bytes };
}
