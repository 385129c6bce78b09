import type { Transport } from "@connectrpc/connect";
import { createContext, useContext } from "react";
import type { Role } from "../../../gen/agentgateway/admin/v1/api_keys_pb.js";

/** An operator of one tenant, from ApiKeyService.WhoAmI. */
export interface OperatorMe {
  kind: "operator";
  tenantId: string;
  tenantName: string;
  keyName: string;
  keyId: string;
  role: Role;
  transport: Transport;
}

/** The provider, signed in with a system key (SystemKeyService.WhoAmI): sees the provider pages only. */
export interface ProviderMe {
  kind: "system";
  keyId: string;
  keyName: string;
  fingerprint: string;
  transport: Transport;
}

/** Who is signed in. The two never share a shell: each sees only its own pages. */
export type Me = OperatorMe | ProviderMe;

export const MeContext = createContext<Me | undefined>(undefined);

/** The signed-in operator; tenant pages render only inside the operator shell. */
export function useMe(): OperatorMe {
  const me = useContext(MeContext);
  if (me?.kind !== "operator") throw new Error("useMe outside the operator shell");
  return me;
}

/** The signed-in provider; provider pages render only inside the provider shell. */
export function useProvider(): ProviderMe {
  const me = useContext(MeContext);
  if (me?.kind !== "system") throw new Error("useProvider outside the provider shell");
  return me;
}
