import { useMutation } from "@connectrpc/connect-query";
import { useState } from "react";
import { type Agent, AgentService } from "../../../gen/agentgateway/admin/v1/agents_pb.js";
import { ConfirmDialog } from "../lib/ui.js";

/**
 * Approval after comparing codes: the code the gateway derived from the registered key is shown
 * large, and the operator types the code the agent printed on its host. The gateway compares
 * the two (expected_verification_code) and refuses on a mismatch, so a substituted key cannot
 * be approved by a hurried click.
 */
export function ApproveDialog({ agent, open, onClose }: { agent: Agent; open: boolean; onClose: () => void }) {
  const approve = useMutation(AgentService.method.approveAgent);
  const [typed, setTyped] = useState("");
  const close = () => {
    setTyped("");
    approve.reset();
    onClose();
  };
  return (
    <ConfirmDialog
      open={open}
      title={`Approve ${agent.name}`}
      confirmLabel="Approve"
      error={approve.error}
      busy={approve.isPending}
      disabled={typed.trim() === ""}
      onConfirm={() => approve.mutate({ id: agent.id, expectedVerificationCode: typed.trim() }, { onSuccess: close })}
      onClose={close}
    >
      <p>The gateway holds this key's code. It must be the code the agent printed when it registered:</p>
      <p className="code-large" data-testid="verification-code">
        {agent.verificationCode}
      </p>
      <label className="field">
        <span>Code the agent printed</span>
        <input
          name="expected-code"
          value={typed}
          onChange={(e) => {
            setTyped(e.target.value);
            approve.reset();
          }}
          placeholder="XXXX-XXXX"
          maxLength={16}
          spellCheck={false}
          autoComplete="off"
          className="mono"
        />
      </label>
    </ConfirmDialog>
  );
}
