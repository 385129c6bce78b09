import type { Transport } from "@connectrpc/connect";
import { createContext, useContext } from "react";
import type { Role } from "../../../gen/agentgateway/admin/v1/api_keys_pb.js";

/** Who is signed in, from ApiKeyService.WhoAmI. */
export interface Me {
  tenantId: string;
  tenantName: string;
  keyName: string;
  keyId: string;
  role: Role;
  transport: Transport;
}

export const MeContext = createContext<Me | undefined>(undefined);

/** The signed-in operator; pages render only inside the signed-in shell. */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside the signed-in shell");
  return me;
}
