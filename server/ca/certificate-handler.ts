import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { FailedPreconditionError } from "../errors/errors.js";
import { agentOf } from "../identity/principal.js";

/**
 * AgentGatewayService.IssueAgentCertificate: a short-lived client certificate for the session's
 * agent (docs/protocol.md, "Agent certificates"). The identity comes from the session only.
 */
export function certificateHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "issueAgentCertificate"> {
  return {
    async issueAgentCertificate(req, ctx) {
      const agent = agentOf(ctx);
      if (!app.ca) throw new FailedPreconditionError("this gateway has no certificate authority (it runs without AGW_CA_KEY)");
      const issued = await app.ca.issueForAgent(agent, req.csrDer, req.bindingSignature);
      return {
        certificateDer: issued.der,
        chainDer: issued.chain,
        trustBundleDer: issued.trustBundle,
        spiffeId: issued.spiffeId,
        notBefore: timestampFromDate(issued.notBefore),
        notAfter: timestampFromDate(issued.notAfter),
      };
    },
  };
}
