import { fromBinary } from "@bufbuild/protobuf";
import { useQuery } from "@connectrpc/connect-query";
import { useEffect, useRef, useState } from "react";
import { type AgentCommand, AgentCommandState, AgentService } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { AuditService } from "../../../gen/agentgateway/admin/v1/audit_pb.js";
import { ReleaseManifestSchema, type SignedReleaseManifest } from "../../../gen/agentgateway/v1/release_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { useFleet } from "../lib/fleet.js";
import { ago, dateTime, enumLabel, shortId } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { Badge, Card, ErrorNote } from "../lib/ui.js";

const COMMAND_TONE: Record<AgentCommandState, string> = {
  [AgentCommandState.UNSPECIFIED]: "grey",
  [AgentCommandState.PENDING]: "amber",
  [AgentCommandState.APPLIED]: "green",
  [AgentCommandState.FAILED]: "red",
  [AgentCommandState.UNSUPPORTED]: "red",
  [AgentCommandState.WITHDRAWN]: "grey",
};

const PAGE_SIZE = 10;

/** The release version inside a rollout directive's signed manifest, if it decodes. */
function versionOf(signed: SignedReleaseManifest | undefined): string | undefined {
  if (!signed) return undefined;
  try {
    return fromBinary(ReleaseManifestSchema, signed.manifest).version || undefined;
  } catch {
    return undefined;
  }
}

/** What a command asks, in a few words, with a link to what it is about (the details in the title). */
function CommandWhat({ c }: { c: AgentCommand }) {
  const payload = c.command?.payload;
  if (payload?.case === "peerRevoked")
    return (
      <span title={`stop trusting agent ${payload.value.agentId} (revoked ${dateTime(payload.value.revokedAt)})`}>
        stop trusting <Link to={`/agents/${payload.value.agentId}`}>{shortId(payload.value.agentId)}</Link>
      </span>
    );
  if (payload?.case === "rollout") {
    const version = versionOf(payload.value.manifest) ?? "a release";
    return (
      <span title={`install ${version}: rollout ${payload.value.rolloutId}, wave ${payload.value.wave + 1}`}>
        install <Link to={`/rollouts/${payload.value.rolloutId}`}>{version}</Link>
      </span>
    );
  }
  return <span className="mono small">{c.kind}</span>;
}

/**
 * Re-reads `refetch` shortly after the live feed changes (any agent: a peer's revocation queues
 * commands for this one; this agent's own changes write its audit records). The feed is the
 * trigger, so nothing is polled; bursts of changes are folded into one read.
 */
function useRefreshOnFleetChange(refetch: () => void, delayMs = 400): void {
  const fleet = useFleet();
  const first = useRef(true);
  const latest = useRef(refetch);
  latest.current = refetch;
  // biome-ignore lint/correctness/useExhaustiveDependencies: the fleet's identity is the trigger; the body reads the latest refetch from a ref
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const timer = setTimeout(() => latest.current(), delayMs);
    return () => clearTimeout(timer);
  }, [fleet.agents, delayMs]);
}

/** The commands the gateway queued for the agent on its ControlStream, newest first, with their acks. */
export function AgentCommandsCard({ agentId }: { agentId: string }) {
  const now = useNow(10_000);
  const [pendingOnly, setPendingOnly] = useState(false);
  const [cursor, setCursor] = useState<string[]>([""]);
  const pageToken = cursor[cursor.length - 1] ?? "";
  // Never served from cache alone: switching between "pending only" and all reads afresh.
  const list = useQuery(AgentService.method.listAgentCommands, { agentId, pendingOnly, pageSize: PAGE_SIZE, pageToken }, { staleTime: 0 });
  useRefreshOnFleetChange(() => void list.refetch());
  const pending = list.data?.commands.filter((c) => c.state === AgentCommandState.PENDING).length ?? 0;
  return (
    <Card
      title="Commands"
      className="span-2"
      actions={
        <>
          <label className="check">
            <input
              type="checkbox"
              checked={pendingOnly}
              data-testid="commands-pending-only"
              onChange={(e) => {
                setPendingOnly(e.target.checked);
                setCursor([""]);
              }}
            />{" "}
            pending only
          </label>
          <button type="button" className="button" onClick={() => void list.refetch()} disabled={list.isFetching}>
            Refresh
          </button>
        </>
      }
    >
      <ErrorNote error={list.error} />
      {list.data && list.data.commands.length === 0 && (
        <p className="muted" data-testid="commands-empty">
          {pendingOnly ? "Nothing pending: the agent has acknowledged every command." : "No commands queued for this agent yet."}
        </p>
      )}
      {list.data && list.data.commands.length > 0 && (
        <table className="table fixed" data-testid="commands-table" data-pending={pending}>
          <colgroup>
            <col className="w-seq" />
            <col className="w-state" />
            <col />
            <col className="w-ago" />
            <col className="w-acked" />
          </colgroup>
          <thead>
            <tr>
              <th className="num">Seq</th>
              <th>State</th>
              <th>Command</th>
              <th>Queued</th>
              <th>Acked</th>
            </tr>
          </thead>
          <tbody>
            {list.data.commands.map((c) => (
              <tr key={c.commandId} data-testid="command-row" data-state={AgentCommandState[c.state]}>
                <td className="num mono" title={c.commandId}>
                  {String(c.sequence)}
                </td>
                <td>
                  <Badge tone={COMMAND_TONE[c.state]}>{enumLabel(AgentCommandState, c.state)}</Badge>
                </td>
                <td className="ellipsis">
                  <CommandWhat c={c} />
                </td>
                <td className="nowrap" title={dateTime(c.createdAt)}>
                  {ago(c.createdAt, now)}
                </td>
                <td className="ellipsis" title={c.ackReason ? `${dateTime(c.ackedAt)}: ${c.ackReason}` : dateTime(c.ackedAt)}>
                  {c.ackedAt ? ago(c.ackedAt, now) : <span className="muted">—</span>}
                  {c.ackReason && <div className="muted small">{c.ackReason}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(cursor.length > 1 || list.data?.nextPageToken) && (
        <nav className="pager">
          <button type="button" className="button" disabled={cursor.length <= 1} onClick={() => setCursor(cursor.slice(0, -1))}>
            ← Newer
          </button>
          <button type="button" className="button" disabled={!list.data?.nextPageToken} onClick={() => setCursor([...cursor, list.data?.nextPageToken ?? ""])}>
            Older →
          </button>
        </nav>
      )}
      <p className="muted small">
        Pending commands go out whenever the agent's stream is up and again after each reconnect, until the agent acknowledges them.
      </p>
    </Card>
  );
}

/** The agent's own audit records (target agent:ID), in chain order; admins only, like the audit log. */
export function AgentAuditCard({ agentId }: { agentId: string }) {
  const me = useMe();
  const now = useNow(10_000);
  const allowed = roleAllows(me.role, AuditService.method.listAuditEvents);
  const [cursors, setCursors] = useState<bigint[]>([0n]);
  const afterSeq = cursors[cursors.length - 1] ?? 0n;
  const list = useQuery(AuditService.method.listAuditEvents, { target: `agent:${agentId}`, afterSeq, pageSize: PAGE_SIZE }, { enabled: allowed });
  const fleet = useFleet();
  const self = fleet.agents.get(agentId);
  // This agent's records change only when the agent does: re-read on its own live updates.
  const seen = useRef(self);
  useEffect(() => {
    if (seen.current === self) return;
    seen.current = self;
    if (allowed) void list.refetch();
  }, [self, allowed, list]);
  const next = list.data?.nextAfterSeq ?? 0n;
  return (
    <Card title="Audit records" className="span-2">
      {!allowed && <p className="muted">The audit log needs a key with role admin.</p>}
      <ErrorNote error={list.error} />
      {list.data && list.data.events.length === 0 && <p className="muted">No audit records about this agent.</p>}
      {list.data && list.data.events.length > 0 && (
        <table className="table fixed" data-testid="agent-audit-table">
          <colgroup>
            <col className="w-seq" />
            <col className="w-ago" />
            <col className="w-action" />
            <col className="w-by" />
            <col />
          </colgroup>
          <thead>
            <tr>
              <th className="num">Seq</th>
              <th>Time</th>
              <th>Action</th>
              <th>By</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {list.data.events.map((e) => (
              <tr key={String(e.seq)} data-testid="agent-audit-row">
                <td className="num mono">{String(e.seq)}</td>
                <td className="nowrap" title={dateTime(e.createdAt)}>
                  {ago(e.createdAt, now)}
                </td>
                <td>
                  <Badge tone={e.action.includes("revoked") || e.action.includes("rejected") ? "red" : e.action.includes("approved") ? "green" : "grey"}>{e.action}</Badge>
                </td>
                <td className="mono small ellipsis" title={e.actor}>
                  {e.actor.split(":")[0]}
                </td>
                <td className="mono small ellipsis" title={e.data ? JSON.stringify(e.data) : ""}>
                  {e.data && Object.keys(e.data).length > 0 ? JSON.stringify(e.data) : ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(cursors.length > 1 || next !== 0n) && (
        <nav className="pager">
          <button type="button" className="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
            ← Earlier
          </button>
          <button type="button" className="button" disabled={next === 0n} onClick={() => setCursors([...cursors, next])}>
            Later →
          </button>
        </nav>
      )}
    </Card>
  );
}
