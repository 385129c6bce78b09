import { useMutation, useQuery } from "@connectrpc/connect-query";
import { type ReactNode, useState } from "react";
import { type AuditEvent, AuditService } from "../../../gen/agentgateway/admin/v1/audit_pb.js";
import { dateTime, hex } from "../lib/format.js";
import { Link } from "../lib/router.js";
import { Badge, Card, ErrorNote } from "../lib/ui.js";

/** Records per page of an audit chain. */
export const PAGE_SIZE = 25;

/** "operator:<uuid>" → "operator:77aa40d0": the full value is in the cell's title. */
function shortActor(actor: string): string {
  const colon = actor.indexOf(":");
  return colon > 0 ? `${actor.slice(0, colon)}:${actor.slice(colon + 1, colon + 9)}` : actor;
}

/** "agent:<id>" targets link to the agent (tenant chains only: the provider has no agent pages). */
function Target({ target, linkAgents }: { target: string; linkAgents: boolean }) {
  if (linkAgents && target.startsWith("agent:")) return <Link to={`/agents/${target.slice(6)}`}>{target}</Link>;
  return <span>{target}</span>;
}

function tone(action: string): string {
  if (action.includes("revoked") || action.includes("rejected") || action.includes("suspended") || action.includes("deleted")) return "red";
  if (action.includes("approved") || action.includes("resumed")) return "green";
  return "grey";
}

/** What a chain check answered. */
export interface ChainCheck {
  ok: boolean;
  checked: bigint;
  firstBadSeq: bigint;
  message: string;
}

/**
 * One hash-chained audit log, page by page from a cursor, with a chain check: the tenant's
 * (AuditPage) and the provider's (ProviderAuditPage) have the same records and hashing.
 */
export function AuditChainView(props: {
  title: string;
  list: { data?: { events: AuditEvent[]; nextAfterSeq: bigint } | undefined; error: unknown };
  verify: { data?: ChainCheck | undefined; error: unknown; isPending: boolean; mutate: (req: Record<string, never>) => void };
  cursors: Cursors;
  filter?: ReactNode;
  linkAgents: boolean;
}) {
  const { verify, cursors } = props;
  const events = props.list.data?.events;
  const next = props.list.data?.nextAfterSeq ?? 0n;
  return (
    <Card
      title={props.title}
      actions={
        <>
          {props.filter}
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
      <ErrorNote error={verify.error ?? props.list.error} />
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
          {events?.map((e) => (
            <tr key={String(e.seq)} data-testid="audit-row">
              <td className="num mono">{String(e.seq)}</td>
              <td className="nowrap">{dateTime(e.createdAt)}</td>
              <td className="mono small ellipsis" title={e.actor}>
                {shortActor(e.actor)}
              </td>
              <td>
                <Badge tone={tone(e.action)}>{e.action}</Badge>
              </td>
              <td className="mono small ellipsis">
                <Target target={e.target} linkAgents={props.linkAgents} />
              </td>
              <td className="mono small ellipsis" title={e.data ? JSON.stringify(e.data) : ""}>
                {e.data ? JSON.stringify(e.data) : ""}
              </td>
              <td className="mono small" title={hex(e.hash)}>
                {hex(e.hash).slice(0, 10)}
              </td>
            </tr>
          ))}
          {events?.length === 0 && (
            <tr>
              <td colSpan={7} className="muted center">
                No records.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <nav className="pager">
        <button type="button" className="button" disabled={!cursors.earlier} onClick={cursors.earlier}>
          ← Earlier
        </button>
        <span>records after #{String(cursors.afterSeq)}</span>
        <button type="button" className="button" disabled={next === 0n} onClick={() => cursors.later(next)}>
          Later →
        </button>
      </nav>
    </Card>
  );
}

/** Where a paged chain view is: `afterSeq` of the page shown, and the moves from it. */
export interface Cursors {
  afterSeq: bigint;
  earlier: (() => void) | undefined;
  later: (next: bigint) => void;
  reset: () => void;
}

/** The after_seq cursors of the pages seen so far; the last one is the page shown. */
export function useCursors(): Cursors {
  const [cursors, setCursors] = useState<bigint[]>([0n]);
  return {
    afterSeq: cursors[cursors.length - 1] ?? 0n,
    earlier: cursors.length > 1 ? () => setCursors(cursors.slice(0, -1)) : undefined,
    later: (next) => setCursors([...cursors, next]),
    reset: () => setCursors([0n]),
  };
}

/** The tenant's hash-chained audit log, page by page from a cursor, with a chain check. */
export function AuditPage() {
  const cursors = useCursors();
  const [action, setAction] = useState("");
  const list = useQuery(AuditService.method.listAuditEvents, { afterSeq: cursors.afterSeq, pageSize: PAGE_SIZE, action: action.trim() });
  const verify = useMutation(AuditService.method.verifyAuditChain);
  return (
    <AuditChainView
      title="Audit log"
      list={list}
      verify={verify}
      cursors={cursors}
      linkAgents
      filter={
        <input
          type="search"
          placeholder="action, e.g. agent.revoked"
          value={action}
          onChange={(e) => {
            setAction(e.target.value);
            cursors.reset();
          }}
          aria-label="action"
          className="w-search"
        />
      }
    />
  );
}
