import { timestampDate } from "@bufbuild/protobuf/wkt";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";
import { useFleet } from "../lib/fleet.js";
import { ago, dateTime } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { Card } from "../lib/ui.js";
import { AgentActions } from "./agent-actions.js";

/**
 * Agents waiting for approval, oldest first, live: a new registration appears here without a
 * reload. Each shows its verification code large, to compare with what the agent printed.
 */
export function ApprovalsPage() {
  const fleet = useFleet();
  const now = useNow(5000);
  const pending = [...fleet.agents.values()]
    .filter((a) => a.state === AgentState.PENDING_APPROVAL)
    .sort((a, b) => (a.createdAt ? timestampDate(a.createdAt).getTime() : 0) - (b.createdAt ? timestampDate(b.createdAt).getTime() : 0));
  return (
    <Card title={`Pending approvals (${pending.length})`}>
      <p className="muted">
        Before approving, compare the code below with the one the agent printed on its host (or in its log). A different code means the key that reached the gateway is not the agent's.
      </p>
      {fleet.ready && pending.length === 0 && <p className="empty">Nothing is waiting. Agents enrolled with a token that requires approval appear here as they register.</p>}
      <div className="approvals">
        {pending.map((a) => (
          <article className="approval" key={a.id} data-testid="approval" data-agent-id={a.id}>
            <div className="approval-code mono" data-testid="approval-code">
              {a.verificationCode}
            </div>
            <div className="approval-body">
              <h3>
                <Link to={`/agents/${a.id}`}>{a.name}</Link>
              </h3>
              <p className="muted small">
                {a.host?.hostname || "unknown host"}
                {a.host?.os ? ` · ${a.host.os}/${a.host.arch}` : ""} · registered {ago(a.createdAt, now)} ({dateTime(a.createdAt)})
              </p>
              <p className="labels">
                {Object.entries(a.labels).map(([k, v]) => (
                  <span className="label" key={k}>
                    {k}={v}
                  </span>
                ))}
              </p>
            </div>
            <AgentActions agent={a} only={["approve", "reject"]} />
          </article>
        ))}
      </div>
    </Card>
  );
}
