/** How agents, their events and their metric points look in tables. */
import { durationMs, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { type Agent, Liveness, LivenessSchema } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState, AgentStateSchema } from "../../gen/agentgateway/v1/common_pb.js";
import { AgentStatusSchema, EventSeverity, EventSeveritySchema, type MetricPoint } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { StoredEvent } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { enumName } from "../output.js";
import { type Cell, formatLabels, relativeTime, type Style } from "../table.js";

const STATE_STYLE: Record<number, Style> = {
  [AgentState.PENDING_APPROVAL]: "warn",
  [AgentState.ACTIVE]: "good",
  [AgentState.REJECTED]: "dim",
  [AgentState.REVOKED]: "bad",
  [AgentState.RETIRED]: "dim",
};

const LIVENESS_STYLE: Record<number, Style> = {
  [Liveness.ONLINE]: "good",
  [Liveness.STALE]: "warn",
  [Liveness.OFFLINE]: "dim",
};

const SEVERITY_STYLE: Record<number, Style> = {
  [EventSeverity.DEBUG]: "dim",
  [EventSeverity.WARNING]: "warn",
  [EventSeverity.ERROR]: "bad",
  [EventSeverity.CRITICAL]: "bad",
};

/** Appended to NOT_FOUND errors of the agents group. */
export const AGENT_NOT_FOUND = "list agents with `agwctl agents list`";

/** A timestamp as a Date, or undefined. */
export const dateOf = (ts: Timestamp | undefined): Date | undefined => (ts ? timestampDate(ts) : undefined);

/** "2026-05-01T12:00:00.000Z (3m ago)", or "-". */
export function when(ts: Timestamp | undefined): string {
  const at = dateOf(ts);
  return at ? `${at.toISOString()} (${relativeTime(at)})` : "-";
}

/** The agent's state as a styled cell. */
export function stateCell(state: AgentState): Cell {
  return { text: enumName(AgentStateSchema, state), style: STATE_STYLE[state] ?? "dim" };
}

/** Columns of `agents list`. */
export const AGENT_HEADERS = ["ID", "NAME", "STATE", "LIVENESS", "VERSION", "LAST SEEN", "CODE", "LABELS"];

/** One row of `agents list`. */
export function agentRow(a: Agent): Cell[] {
  return [
    a.id,
    a.name,
    stateCell(a.state),
    { text: enumName(LivenessSchema, a.liveness), style: LIVENESS_STYLE[a.liveness] ?? "dim" },
    a.agentVersion || "-",
    relativeTime(dateOf(a.lastSeenAt)),
    a.verificationCode,
    formatLabels(a.labels),
  ];
}

function uptime(a: Agent): string {
  if (!a.uptime) return "-";
  const s = Math.round(durationMs(a.uptime) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? `${d}d${h}h` : h ? `${h}h${m}m` : `${m}m${s % 60}s`;
}

/** The key/value view of `agents get`. */
export function agentFields(a: Agent): Array<[string, Cell]> {
  const host = a.host ? [a.host.hostname, [a.host.os, a.host.arch].filter(Boolean).join("/")].filter(Boolean).join(" ") : "";
  return [
    ["id", a.id],
    ["name", a.name],
    ["state", stateCell(a.state)],
    ["verification code", a.verificationCode],
    ["liveness", { text: enumName(LivenessSchema, a.liveness), style: LIVENESS_STYLE[a.liveness] ?? "dim" }],
    ["last seen", when(a.lastSeenAt)],
    ["version", a.agentVersion || "-"],
    ["reported status", a.reportedStatus ? enumName(AgentStatusSchema, a.reportedStatus) : "-"],
    ["uptime", uptime(a)],
    ["labels", formatLabels(a.labels)],
    ["host labels", formatLabels(a.host?.labels)],
    ["host", host || "-"],
    ["identity key", Buffer.from(a.identityPublicKey).toString("hex")],
    ["created", when(a.createdAt)],
    ["approved", when(a.approvedAt)],
    ["revoked", a.revokedAt ? `${when(a.revokedAt)}: ${a.revokeReason}` : "-"],
    ["enrollment token", a.enrollmentTokenId || "-"],
  ];
}

/** Columns of `agents events`. */
export const EVENT_HEADERS = ["OCCURRED", "SEVERITY", "TYPE", "MESSAGE", "ATTRIBUTES"];

/** One row of `agents events`. */
export function eventRow(e: StoredEvent): Cell[] {
  const ev = e.event;
  return [
    dateOf(ev?.occurredAt)?.toISOString() ?? "-",
    { text: enumName(EventSeveritySchema, ev?.severity ?? 0), style: SEVERITY_STYLE[ev?.severity ?? 0] },
    ev?.type ?? "",
    ev?.message ?? "",
    formatLabels(ev?.attributes),
  ];
}

/** Columns of `agents telemetry`. */
export const POINT_HEADERS = ["OBSERVED", "NAME", "VALUE", "LABELS"];

/** One row of `agents telemetry`. */
export function pointRow(p: MetricPoint): Cell[] {
  return [dateOf(p.observedAt)?.toISOString() ?? "-", p.name, String(p.value), formatLabels(p.labels)];
}
