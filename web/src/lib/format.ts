import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Liveness } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";

/** "PENDING_APPROVAL" → "pending approval". */
export function enumLabel(names: Record<number, string>, value: number): string {
  return (names[value] ?? "unknown").toLowerCase().replace(/_/g, " ");
}

export const stateLabel = (s: AgentState) => enumLabel(AgentState, s);
export const livenessLabel = (l: Liveness) => enumLabel(Liveness, l);

/** A timestamp as local date and time, or a dash. */
export function dateTime(ts: Timestamp | undefined): string {
  if (!ts) return "—";
  return timestampDate(ts).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** "12 s ago", "3 min ago", "2 h ago", "4 d ago" (or a dash). */
export function ago(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts) return "never";
  const s = Math.max(0, Math.round((now - timestampDate(ts).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** "in 5 min" / "5 min ago" for deadlines. */
export function relative(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts) return "—";
  const ms = timestampDate(ts).getTime() - now;
  if (ms < 0) return ago(ts, now);
  const s = Math.round(ms / 1000);
  return s < 60 ? `in ${s} s` : s < 3600 ? `in ${Math.floor(s / 60)} min` : `in ${Math.floor(s / 3600)} h`;
}

/** "1 d 2 h", "3 h 4 min", "5 min" from a Duration. */
export function duration(d: Duration | undefined): string {
  if (!d) return "—";
  const s = Number(d.seconds);
  if (s <= 0) return "—";
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  return minutes > 0 ? `${minutes} min` : `${s} s`;
}

/** The first characters of an id, for tables (the full id is in the title and the detail page). */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/** Hex of bytes. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
