import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { Access_Caller, Access_Role, access } from "../../gen/agentgateway/v1/access_pb.js";
import type { RoleName } from "../db/schema.js";

/** What a method requires of its caller, read once from its `(agentgateway.v1.access)` option. */
export type MethodAccess =
  | { readonly caller: "public" }
  | { readonly caller: "agent" }
  | { readonly caller: "operator"; readonly role: RoleName }
  | { readonly caller: "system" };

const PUBLIC: MethodAccess = { caller: "public" };
const AGENT: MethodAccess = { caller: "agent" };
const SYSTEM: MethodAccess = { caller: "system" };
const ROLES: Partial<Record<Access_Role, RoleName>> = {
  [Access_Role.VIEWER]: "viewer",
  [Access_Role.EDITOR]: "editor",
  [Access_Role.ADMIN]: "admin",
};
const RANK: Record<RoleName, number> = { viewer: 1, editor: 2, admin: 3 };

/** Whether a key with role `held` may call a method that needs `required`. */
export function roleAllows(held: RoleName, required: RoleName): boolean {
  return RANK[held] >= RANK[required];
}

/** "package.Service/Method", as error messages and logs name a method. */
export function methodName(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * The access a method declares in the protos. Throws when the option is missing or makes no
 * sense (no caller kind; an operator RPC without a role; a role on a non-operator RPC), so a
 * new RPC cannot be served until someone has decided who may call it.
 */
export function declaredAccess(method: DescMethod): MethodAccess {
  if (!hasOption(method, access)) throw new Error(`${methodName(method)} declares no (agentgateway.v1.access) option`);
  const declared = getOption(method, access);
  const role = ROLES[declared.role];
  switch (declared.caller) {
    case Access_Caller.PUBLIC:
    case Access_Caller.AGENT:
    case Access_Caller.SYSTEM:
      if (declared.role !== Access_Role.UNSPECIFIED) throw new Error(`${methodName(method)}: a role only applies to operator RPCs`);
      return declared.caller === Access_Caller.PUBLIC ? PUBLIC : declared.caller === Access_Caller.AGENT ? AGENT : SYSTEM;
    case Access_Caller.OPERATOR:
      if (!role) throw new Error(`${methodName(method)}: an operator RPC must declare a role`);
      return { caller: "operator", role };
    default:
      throw new Error(`${methodName(method)}: (agentgateway.v1.access) has no caller kind`);
  }
}

/**
 * Who may call each served method, keyed by method descriptor. Built at start-up from the
 * descriptors; building it throws if any method has no valid declaration (fail fast).
 */
export class AccessPolicy {
  private constructor(private readonly byMethod: ReadonlyMap<DescMethod, MethodAccess>) {}

  /**
   * The policy of `services`, every method from its option. `publicServices` are vendored
   * services whose protos we do not own and so cannot annotate (grpc.health, reflection): they
   * are public, as every gRPC tool and probe expects.
   */
  static fromServices(services: readonly DescService[], publicServices: readonly DescService[] = []): AccessPolicy {
    const byMethod = new Map<DescMethod, MethodAccess>();
    for (const service of services) for (const method of service.methods) byMethod.set(method, declaredAccess(method));
    for (const service of publicServices) for (const method of service.methods) byMethod.set(method, PUBLIC);
    return new AccessPolicy(byMethod);
  }

  /** The access of a method, or undefined if the policy does not know it. */
  get(method: DescMethod): MethodAccess | undefined {
    return this.byMethod.get(method);
  }

  /** Throws unless every method has an entry, so nothing can be served outside the policy. */
  assertCovers(methods: Iterable<DescMethod>): void {
    const missing = [...methods].filter((m) => !this.byMethod.has(m)).map(methodName);
    if (missing.length > 0) throw new Error(`served methods outside the access policy: ${missing.join(", ")}`);
  }
}
