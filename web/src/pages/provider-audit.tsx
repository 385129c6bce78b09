import { useMutation, useQuery } from "@connectrpc/connect-query";
import { ProviderAuditService } from "../../../gen/agentgateway/provider/v1/tenants_pb.js";
import { AuditChainView, PAGE_SIZE, useCursors } from "./audit.js";

/** The provider audit chain (system key only): every tenant created, suspended, resumed, deleted, and every system key rotation. */
export function ProviderAuditPage() {
  const cursors = useCursors();
  const list = useQuery(ProviderAuditService.method.listProviderAuditEvents, { afterSeq: cursors.afterSeq, pageSize: PAGE_SIZE });
  const verify = useMutation(ProviderAuditService.method.verifyProviderAuditChain);
  return <AuditChainView title="Provider audit log" list={list} verify={verify} cursors={cursors} linkAgents={false} />;
}
