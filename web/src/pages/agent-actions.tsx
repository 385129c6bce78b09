import { useMutation } from "@connectrpc/connect-query";
import { useState } from "react";
import { type Agent, AgentService } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../../../gen/agentgateway/v1/common_pb.js";
import { roleAllows } from "../lib/access.js";
import { useMe } from "../lib/auth.js";
import { ConfirmDialog } from "../lib/ui.js";
import { ApproveDialog } from "./approve-dialog.js";

type Action = "approve" | "reject" | "revoke" | "unrevoke" | "retire";

const FROM: Record<Action, AgentState[]> = {
  approve: [AgentState.PENDING_APPROVAL],
  reject: [AgentState.PENDING_APPROVAL],
  revoke: [AgentState.ACTIVE, AgentState.PENDING_APPROVAL],
  unrevoke: [AgentState.REVOKED],
  retire: [AgentState.ACTIVE, AgentState.PENDING_APPROVAL, AgentState.REJECTED, AgentState.REVOKED],
};

const TEXT: Record<Exclude<Action, "approve">, { title: string; label: string; required: boolean; confirm: string; danger: boolean; what: string }> = {
  reject: { title: "Reject agent", label: "Reason", required: false, confirm: "Reject", danger: true, what: "It will not be able to connect with this registration." },
  revoke: {
    title: "Revoke agent",
    label: "Reason (recorded in the audit log and sent to the agent)",
    required: true,
    confirm: "Revoke",
    danger: true,
    what: "Its sessions end at once on every gateway, its stream is closed, and its key is refused until someone un-revokes it.",
  },
  unrevoke: { title: "Un-revoke agent", label: "Why it is trusted again", required: true, confirm: "Un-revoke", danger: false, what: "The agent may handshake again with its key." },
  retire: { title: "Retire agent", label: "Reason", required: false, confirm: "Retire", danger: true, what: "The agent is decommissioned; its key may later enroll again with a new token." },
};

/** The lifecycle actions this agent's state and the operator's role allow, each behind a confirmation. */
export function AgentActions({ agent, only }: { agent: Agent; only?: Action[] }) {
  const me = useMe();
  const [open, setOpen] = useState<Action | undefined>(undefined);
  const methods = {
    approve: AgentService.method.approveAgent,
    reject: AgentService.method.rejectAgent,
    revoke: AgentService.method.revokeAgent,
    unrevoke: AgentService.method.unrevokeAgent,
    retire: AgentService.method.retireAgent,
  };
  const reject = useMutation(AgentService.method.rejectAgent);
  const revoke = useMutation(AgentService.method.revokeAgent);
  const unrevoke = useMutation(AgentService.method.unrevokeAgent);
  const retire = useMutation(AgentService.method.retireAgent);
  const mutations = { reject, revoke, unrevoke, retire };
  const allowed = (Object.keys(FROM) as Action[]).filter((a) => (!only || only.includes(a)) && FROM[a].includes(agent.state) && roleAllows(me.role, methods[a]));
  if (allowed.length === 0) return null;
  const close = () => {
    setOpen(undefined);
    for (const m of Object.values(mutations)) m.reset();
  };
  const confirm = (action: Exclude<Action, "approve">, text: string) => {
    const done = { onSuccess: close };
    if (action === "unrevoke") unrevoke.mutate({ id: agent.id, note: text }, done);
    else mutations[action].mutate({ id: agent.id, reason: text }, done);
  };
  return (
    <div className="actions">
      {allowed.map((a) => (
        <button key={a} type="button" className={`button ${a === "approve" ? "primary" : a === "unrevoke" ? "" : "danger-outline"}`} onClick={() => setOpen(a)} data-action={a}>
          {a === "unrevoke" ? "Un-revoke" : a[0]?.toUpperCase() + a.slice(1)}
        </button>
      ))}
      <ApproveDialog agent={agent} open={open === "approve"} onClose={close} />
      {(Object.keys(TEXT) as Array<Exclude<Action, "approve">>).map((a) => (
        <ConfirmDialog
          key={a}
          open={open === a}
          title={`${TEXT[a].title} ${agent.name}`}
          confirmLabel={TEXT[a].confirm}
          danger={TEXT[a].danger}
          textLabel={TEXT[a].label}
          textRequired={TEXT[a].required}
          error={mutations[a].error}
          busy={mutations[a].isPending}
          onConfirm={(text) => confirm(a, text)}
          onClose={close}
        >
          <p>{TEXT[a].what}</p>
        </ConfirmDialog>
      ))}
    </div>
  );
}
