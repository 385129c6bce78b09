import { useQuery } from "@connectrpc/connect-query";
import { type Agent, Liveness } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { RolloutService, RolloutState } from "../../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";
import { useFleet } from "../lib/fleet.js";
import { enumLabel, livenessLabel, stateLabel } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { Badge, Card } from "../lib/ui.js";
import { WaveBars } from "./wave-chart.js";

const STATES = [AgentState.ACTIVE, AgentState.PENDING_APPROVAL, AgentState.REVOKED, AgentState.REJECTED, AgentState.RETIRED];
const LIVENESS = [Liveness.ONLINE, Liveness.STALE, Liveness.OFFLINE];

function countBy<K>(agents: Agent[], key: (a: Agent) => K): Map<K, number> {
  const counts = new Map<K, number>();
  for (const a of agents) counts.set(key(a), (counts.get(key(a)) ?? 0) + 1);
  return counts;
}

/** Counts by state and liveness, the version mix, the running rollout and recent changes, all live. */
export function OverviewPage() {
  const fleet = useFleet();
  const now = useNow(5000);
  const agents = [...fleet.agents.values()];
  // Liveness matters for agents that may connect; retired and rejected ones are history.
  const live = agents.filter((a) => a.state === AgentState.ACTIVE);
  const byState = countBy(agents, (a) => a.state);
  const byLiveness = countBy(live, (a) => a.liveness);
  const versions = [...countBy(live, (a) => a.agentVersion || "unknown")].sort((x, y) => y[1] - x[1]);
  const rollouts = useQuery(RolloutService.method.listRollouts, { pageSize: 5 });
  const running = rollouts.data?.rollouts.find((r) => r.state === RolloutState.RUNNING || r.state === RolloutState.HALTED);

  return (
    <div className="grid">
      <Card title="Agents by state" className="span-2">
        <div className="stats">
          {STATES.map((s) => (
            <div key={s} className={`stat stat-${s}`} data-testid={`count-${stateLabel(s).replace(/ /g, "-")}`}>
              <div className="stat-value">{byState.get(s) ?? 0}</div>
              <div className="stat-label">{stateLabel(s)}</div>
            </div>
          ))}
        </div>
      </Card>
      <Card title="Active agents by liveness" className="span-2">
        <div className="stats">
          {LIVENESS.map((l) => (
            <div key={l} className={`stat live-stat-${l}`} data-testid={`count-${livenessLabel(l)}`}>
              <div className="stat-value">{byLiveness.get(l) ?? 0}</div>
              <div className="stat-label">{livenessLabel(l)}</div>
            </div>
          ))}
        </div>
      </Card>
      <Card title="Version mix (active agents)" className="span-2">
        {versions.length === 0 ? (
          <p className="muted">No active agents yet.</p>
        ) : (
          <ul className="bars">
            {versions.slice(0, 8).map(([version, n]) => (
              <li key={version}>
                <span className="bar-label mono">{version}</span>
                <span className="bar-track">
                  <span className="bar-fill" style={{ width: `${(100 * n) / live.length}%` }} />
                </span>
                <span className="bar-count">{n}</span>
              </li>
            ))}
          </ul>
        )}
      </Card>
      <Card title="Rollout" className="span-2" actions={<Link to="/rollouts">All rollouts</Link>}>
        {running ? (
          <div>
            <p>
              <Link to={`/rollouts/${running.id}`}>{running.targetVersion}</Link> <Badge tone={running.state === RolloutState.HALTED ? "red" : "blue"}>{enumLabel(RolloutState, running.state)}</Badge>
            </p>
            <WaveBars waves={running.waves} compact />
          </div>
        ) : (
          <p className="muted">No rollout is running.</p>
        )}
      </Card>
      <Card title="Recent changes" className="span-4">
        {fleet.changes.length === 0 ? (
          <p className="muted">Changes to agents (registrations, approvals, liveness, versions) appear here as they happen.</p>
        ) : (
          <table className="table changes">
            <tbody>
              {fleet.changes.slice(0, 12).map((c) => (
                <tr key={`${c.at}-${c.agentId}-${c.text}`}>
                  <td className="nowrap muted">{Math.round((now - c.at) / 1000)} s ago</td>
                  <td>
                    <Link to={`/agents/${c.agentId}`}>{c.name}</Link>
                  </td>
                  <td>{c.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
