import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { AuditService } from "../../../gen/agentgateway/admin/v1/audit_pb.js";
import { dateTime, hex } from "../lib/format.js";
import { Link } from "../lib/router.js";
import { Badge, Card, ErrorNote } from "../lib/ui.js";

const PAGE_SIZE = 25;

/** "operator:<uuid>" → "operator:77aa40d0": the full value is in the cell's title. */
function shortActor(actor: string): string {
  const colon = actor.indexOf(":");
  return colon > 0 ? `${actor.slice(0, colon)}:${actor.slice(colon + 1, colon + 9)}` : actor;
}

/** "agent:<id>" targets link to the agent. */
function Target({ target }: { target: string }) {
  if (target.startsWith("agent:")) return <Link to={`/agents/${target.slice(6)}`}>{target}</Link>;
  return <span>{target}</span>;
}

/** The tenant's hash-chained audit log, page by page from a cursor, with a chain check. */
export function AuditPage() {
  // after_seq of each page seen so far; the last one is the page shown.
  const [cursors, setCursors] = useState<bigint[]>([0n]);
  const [action, setAction] = useState("");
  const afterSeq = cursors[cursors.length - 1] ?? 0n;
  const list = useQuery(AuditService.method.listAuditEvents, { afterSeq, pageSize: PAGE_SIZE, action: action.trim() });
  const verify = useMutation(AuditService.method.verifyAuditChain);
  const next = list.data?.nextAfterSeq ?? 0n;

  return (
    <Card
      title="Audit log"
      actions={
        <>
          <input
            type="search"
            placeholder="action, e.g. agent.revoked"
            value={action}
            onChange={(e) => {
              setAction(e.target.value);
              setCursors([0n]);
            }}
            aria-label="action"
            className="w-search"
          />
          <button type="button" className="button primary" onClick={() => verify.mutate({})} disabled={verify.isPending}>
            {verify.isPending ? "Verifying…" : "Verify chain"}
          </button>
        </>
      }
    >
      {verify.data && (
        <p className={verify.data.ok ? "ok banner-ok" : "banner"} data-testid="verify-result" data-ok={verify.data.ok}>
          {verify.data.ok
            ? `Chain intact: ${verify.data.checked} records verified.`
            : `Chain broken at record ${verify.data.firstBadSeq} (${verify.data.checked} checked): ${verify.data.message}`}
        </p>
      )}
      <ErrorNote error={verify.error ?? list.error} />
      <table className="table fixed" data-testid="audit-table">
        <colgroup>
          <col className="w-seq" />
          <col className="w-time" />
          <col className="w-actor" />
          <col className="w-action" />
          <col className="w-target" />
          <col />
          <col className="w-hash" />
        </colgroup>
        <thead>
          <tr>
            <th className="num">Seq</th>
            <th>Time</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Target</th>
            <th>Details</th>
            <th>Hash</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.events.map((e) => (
            <tr key={String(e.seq)} data-testid="audit-row">
              <td className="num mono">{String(e.seq)}</td>
              <td className="nowrap">{dateTime(e.createdAt)}</td>
              <td className="mono small ellipsis" title={e.actor}>
                {shortActor(e.actor)}
              </td>
              <td>
                <Badge tone={e.action.includes("revoked") || e.action.includes("rejected") ? "red" : e.action.includes("approved") ? "green" : "grey"}>{e.action}</Badge>
              </td>
              <td className="mono small ellipsis">
                <Target target={e.target} />
              </td>
              <td className="mono small ellipsis" title={e.data ? JSON.stringify(e.data) : ""}>
                {e.data ? JSON.stringify(e.data) : ""}
              </td>
              <td className="mono small" title={hex(e.hash)}>
                {hex(e.hash).slice(0, 10)}
              </td>
            </tr>
          ))}
          {list.data?.events.length === 0 && (
            <tr>
              <td colSpan={7} className="muted center">
                No records.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <nav className="pager">
        <button type="button" className="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Earlier
        </button>
        <span>records after #{String(afterSeq)}</span>
        <button type="button" className="button" disabled={next === 0n} onClick={() => setCursors([...cursors, next])}>
          Later →
        </button>
      </nav>
    </Card>
  );
}
