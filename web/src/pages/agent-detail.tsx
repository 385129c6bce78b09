import { useQuery } from "@connectrpc/connect-query";
import { AgentService } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import type { ReactNode } from "react";
import { AgentStatus, EventSeverity } from "../../../gen/agentgateway/v1/ingest_pb.js";
import { enumLabel, ago, dateTime, duration, hex } from "../lib/format.js";
import { useFleet } from "../lib/fleet.js";
import { useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { Badge, Card, ErrorNote, LivenessBadge, StateBadge } from "../lib/ui.js";
import { AgentActions } from "./agent-actions.js";
import { AgentAuditCard, AgentCommandsCard } from "./agent-records.js";

const SEVERITY_TONE: Record<EventSeverity, string> = {
  [EventSeverity.UNSPECIFIED]: "grey",
  [EventSeverity.DEBUG]: "grey",
  [EventSeverity.INFO]: "blue",
  [EventSeverity.WARNING]: "amber",
  [EventSeverity.ERROR]: "red",
  [EventSeverity.CRITICAL]: "red",
};

/** One agent: identity, host facts, liveness (live), its recent events and telemetry, its queued commands and audit records, and the actions its state allows. */
export function AgentDetailPage({ id }: { id: string }) {
  const fleet = useFleet();
  const now = useNow();
  const fetched = useQuery(AgentService.method.getAgent, { id });
  // The live view wins: it is newer than the one-off read whenever the stream is up.
  const agent = fleet.agents.get(id) ?? fetched.data?.agent;
  const events = useQuery(AgentService.method.listAgentEvents, { agentId: id, pageSize: 20 });
  const telemetry = useQuery(AgentService.method.listAgentTelemetry, { agentId: id, pageSize: 50 });

  if (!agent) {
    return (
      <Card title="Agent">
        {fetched.isPending ? <p className="muted">Loading…</p> : <ErrorNote error={fetched.error} />}
        <Link to="/agents">Back to agents</Link>
      </Card>
    );
  }
  const facts: Array<[string, ReactNode]> = [
    ["State", <StateBadge key="s" state={agent.state} />],
    ["Liveness", <LivenessBadge key="l" liveness={agent.liveness} />],
    ["Last heartbeat", `${ago(agent.lastSeenAt, now)} (${dateTime(agent.lastSeenAt)})`],
    ["Reported status", agent.reportedStatus ? enumLabel(AgentStatus, agent.reportedStatus) : "—"],
    ["Uptime", duration(agent.uptime)],
    ["Version", agent.agentVersion || "—"],
    ["Host", agent.host?.hostname ? `${agent.host.hostname}${agent.host.os ? ` (${agent.host.os}/${agent.host.arch})` : ""}` : "—"],
    ["Verification code", <span key="c" className="mono">{agent.verificationCode}</span>],
    ["Identity key", <span key="k" className="mono small break">{hex(agent.identityPublicKey)}</span>],
    ["Registered", dateTime(agent.createdAt)],
    ["Approved", dateTime(agent.approvedAt)],
    ["Revoked", agent.revokedAt ? `${dateTime(agent.revokedAt)} — ${agent.revokeReason}` : "—"],
    ["Enrollment token", <span key="t" className="mono small">{agent.enrollmentTokenId || "—"}</span>],
    ["Agent id", <span key="i" className="mono small">{agent.id}</span>],
  ];
  return (
    <div className="grid">
      <Card
        className="span-4"
        title={
          <>
            <Link to="/agents">Agents</Link> / <span data-testid="agent-name">{agent.name}</span>
          </>
        }
        actions={<AgentActions agent={agent} />}
      >
        <dl className="facts">
          {facts.map(([k, v]) => (
            <div key={k}>
              <dt>{k}</dt>
              <dd>{v}</dd>
            </div>
          ))}
          <div>
            <dt>Host labels (the agent's own claim)</dt>
            <dd className="labels">
              {Object.entries(agent.host?.labels ?? {}).map(([k, v]) => (
                <span className="label label-host" key={k}>
                  {k}={v}
                </span>
              ))}
              {Object.keys(agent.host?.labels ?? {}).length === 0 && "—"}
            </dd>
          </div>
          <div>
            <dt>Labels (set by operators)</dt>
            <dd className="labels">
              {Object.entries(agent.labels).map(([k, v]) => (
                <span className="label" key={k}>
                  {k}={v}
                </span>
              ))}
              {Object.keys(agent.labels).length === 0 && "—"}
            </dd>
          </div>
        </dl>
      </Card>
      <Card title="Recent events" className="span-2">
        <ErrorNote error={events.error} />
        {events.data?.events.length === 0 && <p className="muted">No events uploaded.</p>}
        <table className="table">
          <tbody>
            {events.data?.events.map((e) => (
              <tr key={e.event?.id}>
                <td className="nowrap muted">{ago(e.event?.occurredAt, now)}</td>
                <td>
                  <Badge tone={SEVERITY_TONE[e.event?.severity ?? 0]}>{enumLabel(EventSeverity, e.event?.severity ?? 0)}</Badge>
                </td>
                <td className="mono small">{e.event?.type}</td>
                <td className="ellipsis" title={e.event?.message}>
                  {e.event?.message}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      <Card title="Recent telemetry" className="span-2">
        <ErrorNote error={telemetry.error} />
        {telemetry.data?.points.length === 0 && <p className="muted">No telemetry uploaded.</p>}
        <table className="table">
          <tbody>
            {telemetry.data?.points.slice(0, 20).map((p) => (
              <tr key={p.id}>
                <td className="nowrap muted">{ago(p.observedAt, now)}</td>
                <td className="mono small">{p.name}</td>
                <td className="num">{Number.isInteger(p.value) ? p.value : p.value.toFixed(3)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      <AgentCommandsCard agentId={agent.id} />
      <AgentAuditCard agentId={agent.id} />
    </div>
  );
}
