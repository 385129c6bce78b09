import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { Role } from "../../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { Access_Caller, Access_Role, access } from "../../../gen/agentgateway/v1/access_pb.js";

const RANK: Record<Role, number> = { [Role.UNSPECIFIED]: 0, [Role.VIEWER]: 1, [Role.EDITOR]: 2, [Role.ADMIN]: 3 };
const REQUIRED: Record<Access_Role, number> = { [Access_Role.UNSPECIFIED]: 99, [Access_Role.VIEWER]: 1, [Access_Role.EDITOR]: 2, [Access_Role.ADMIN]: 3 };

/**
 * Whether a key with `role` may call `method`, read from the method's
 * `(agentgateway.v1.access)` option: the same declaration the gateway enforces, so the
 * console offers exactly the actions the gateway would allow. Hiding a button is a courtesy;
 * the gateway still refuses the call.
 */
export function roleAllows(role: Role, method: DescMethod): boolean {
  if (!hasOption(method, access)) return false;
  const declared = getOption(method, access);
  if (declared.caller !== Access_Caller.OPERATOR) return false;
  return RANK[role] >= REQUIRED[declared.role];
}

/** The role's name as operators know it. */
export function roleName(role: Role): string {
  return Role[role]?.toLowerCase() ?? "unknown";
}
