import { timestampDate } from "@bufbuild/protobuf/wkt";
import { useMemo, useState } from "react";
import { type Agent, Liveness } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";
import { useFleet } from "../lib/fleet.js";
import { ago, livenessLabel, shortId, stateLabel } from "../lib/format.js";
import { useNow } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { Card, LivenessBadge, Pager, StateBadge } from "../lib/ui.js";

const PAGE_SIZE = 25;

type SortKey = "name" | "state" | "liveness" | "version" | "lastSeen" | "created";

const SORTS: Record<SortKey, (a: Agent, b: Agent) => number> = {
  name: (a, b) => a.name.localeCompare(b.name),
  state: (a, b) => a.state - b.state,
  liveness: (a, b) => a.liveness - b.liveness,
  version: (a, b) => a.agentVersion.localeCompare(b.agentVersion, undefined, { numeric: true }),
  lastSeen: (a, b) => seen(b) - seen(a),
  created: (a, b) => (b.createdAt ? timestampDate(b.createdAt).getTime() : 0) - (a.createdAt ? timestampDate(a.createdAt).getTime() : 0),
};

function seen(a: Agent): number {
  return a.lastSeenAt ? timestampDate(a.lastSeenAt).getTime() : 0;
}

/** "site=ams, tier=edge" → pairs; malformed parts are ignored. */
function parseLabels(text: string): Array<[string, string]> {
  return text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.includes("="))
    .map((p) => [p.slice(0, p.indexOf("=")).trim(), p.slice(p.indexOf("=") + 1).trim()] as [string, string]);
}

/**
 * The fleet table, from the live WatchAgents view: search, filters and sorting happen here in
 * the browser over the tenant's agents, so every row stays live without refetching.
 */
export function AgentsPage() {
  const fleet = useFleet();
  const now = useNow(5000);
  const [search, setSearch] = useState("");
  const [state, setState] = useState<AgentState | 0>(0);
  const [liveness, setLiveness] = useState<Liveness | 0>(0);
  const [labels, setLabels] = useState("");
  const [sort, setSort] = useState<{ key: SortKey; desc: boolean }>({ key: "name", desc: false });
  const [page, setPage] = useState(0);

  const rows = useMemo(() => {
    const q = search.trim().toLowerCase();
    const wanted = parseLabels(labels);
    const list = [...fleet.agents.values()].filter(
      (a) =>
        (!q || a.name.toLowerCase().includes(q) || a.id.startsWith(q) || a.host?.hostname.toLowerCase().includes(q)) &&
        (!state || a.state === state) &&
        (!liveness || a.liveness === liveness) &&
        wanted.every(([k, v]) => a.labels[k] === v),
    );
    list.sort((a, b) => (sort.desc ? -1 : 1) * (SORTS[sort.key](a, b) || a.name.localeCompare(b.name)));
    return list;
  }, [fleet.agents, search, state, liveness, labels, sort]);

  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  const current = Math.min(page, pages - 1);
  const shown = rows.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);
  const header = (key: SortKey, label: string) => (
    <th aria-sort={sort.key === key ? (sort.desc ? "descending" : "ascending") : "none"}>
      <button type="button" className="sort" onClick={() => setSort((s) => ({ key, desc: s.key === key ? !s.desc : false }))}>
        {label}
        {sort.key === key ? (sort.desc ? " ▾" : " ▴") : ""}
      </button>
    </th>
  );
  const reset = (f: () => void) => {
    f();
    setPage(0);
  };

  return (
    <Card title={`Agents (${rows.length}${rows.length !== fleet.agents.size ? ` of ${fleet.agents.size}` : ""})`}>
      <div className="filters">
        <input type="search" placeholder="Search name, host or id" value={search} onChange={(e) => reset(() => setSearch(e.target.value))} aria-label="search" />
        <select value={state} onChange={(e) => reset(() => setState(Number(e.target.value) as AgentState))} aria-label="state">
          <option value={0}>any state</option>
          {[AgentState.ACTIVE, AgentState.PENDING_APPROVAL, AgentState.REVOKED, AgentState.REJECTED, AgentState.RETIRED].map((s) => (
            <option key={s} value={s}>
              {stateLabel(s)}
            </option>
          ))}
        </select>
        <select value={liveness} onChange={(e) => reset(() => setLiveness(Number(e.target.value) as Liveness))} aria-label="liveness">
          <option value={0}>any liveness</option>
          {[Liveness.ONLINE, Liveness.STALE, Liveness.OFFLINE].map((l) => (
            <option key={l} value={l}>
              {livenessLabel(l)}
            </option>
          ))}
        </select>
        <input type="text" placeholder="labels: site=ams, tier=edge" value={labels} onChange={(e) => reset(() => setLabels(e.target.value))} aria-label="labels" />
      </div>
      {!fleet.ready ? (
        <p className="muted">Loading the fleet…</p>
      ) : (
        <table className="table" data-testid="agents-table">
          <thead>
            <tr>
              {header("name", "Name")}
              {header("state", "State")}
              {header("liveness", "Liveness")}
              {header("version", "Version")}
              <th>Host</th>
              <th>Labels</th>
              {header("lastSeen", "Last heartbeat")}
            </tr>
          </thead>
          <tbody>
            {shown.map((a) => (
              <tr key={a.id} data-testid="agent-row" data-agent-id={a.id}>
                <td>
                  <Link to={`/agents/${a.id}`} title={a.id}>
                    {a.name}
                  </Link>
                  <div className="muted mono small">{shortId(a.id)}</div>
                </td>
                <td>
                  <StateBadge state={a.state} />
                </td>
                <td>
                  {/* Liveness means something only for agents allowed to connect. */}
                  {a.state === AgentState.ACTIVE ? <LivenessBadge liveness={a.liveness} /> : <span className="muted">—</span>}
                </td>
                <td className="mono">{a.agentVersion || "—"}</td>
                <td className="ellipsis" title={a.host ? `${a.host.hostname} ${a.host.os}/${a.host.arch}` : ""}>
                  {a.host?.hostname || "—"}
                  {a.host?.os ? <span className="muted small"> {a.host.os}/{a.host.arch}</span> : null}
                </td>
                <td className="labels">
                  {Object.entries(a.labels)
                    .slice(0, 3)
                    .map(([k, v]) => (
                      <span className="label" key={k}>
                        {k}={v}
                      </span>
                    ))}
                </td>
                <td className="nowrap">{ago(a.lastSeenAt, now)}</td>
              </tr>
            ))}
            {shown.length === 0 && (
              <tr>
                <td colSpan={7} className="muted center">
                  No agents match.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      <Pager page={current} pages={pages} onPage={setPage} total={rows.length} />
    </Card>
  );
}
