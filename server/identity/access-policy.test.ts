import { readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DescFile, DescMethod, DescService } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { accessPolicy } from "../app/routes.js";
import { AccessPolicy, declaredAccess, roleAllows } from "./access-policy.js";

const GEN = fileURLToPath(new URL("../../gen/", import.meta.url));

function pbFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return pbFiles(path);
    return entry.name.endsWith("_pb.ts") ? [path] : [];
  });
}

/** Every service generated into gen/, found by walking the directory (so a new proto file cannot be missed). */
async function generatedServices(): Promise<{ path: string; service: DescService }[]> {
  const found: { path: string; service: DescService }[] = [];
  for (const path of pbFiles(GEN)) {
    const module: Record<string, unknown> = await import(pathToFileURL(path).href);
    for (const value of Object.values(module)) {
      const file = value as Partial<DescFile>;
      if (file?.kind === "file") for (const service of file.services ?? []) found.push({ path: relative(GEN, path), service });
    }
  }
  return found;
}

const methodOf = (service: DescService, name: string): DescMethod => {
  const method = service.methods.find((m) => m.name === name);
  if (!method) throw new Error(`no ${name}`);
  return method;
};

describe("access declared in the protos", () => {
  it("every method of every service of ours in gen/ declares a valid access option", async () => {
    const ours = (await generatedServices()).filter(({ path }) => path.startsWith("agentgateway/"));
    expect(ours.length).toBeGreaterThanOrEqual(7);
    for (const { service } of ours) {
      for (const method of service.methods) expect(() => declaredAccess(method), `${service.typeName}/${method.name}`).not.toThrow();
    }
  });

  it("the gateway's policy covers every method of every service in gen/, vendored ones as public", async () => {
    const policy = accessPolicy();
    for (const { path, service } of await generatedServices()) {
      for (const method of service.methods) {
        const access = policy.get(method);
        expect(access, `${service.typeName}/${method.name}`).toBeDefined();
        if (!path.startsWith("agentgateway/")) expect(access).toEqual({ caller: "public" });
      }
    }
  });

  it("reads caller kind and role from the option", () => {
    expect(declaredAccess(methodOf(AgentGatewayService, "Register"))).toEqual({ caller: "public" });
    expect(declaredAccess(methodOf(AgentGatewayService, "CompleteAuthHandshake"))).toEqual({ caller: "public" });
    expect(declaredAccess(methodOf(AgentGatewayService, "UploadHeartbeat"))).toEqual({ caller: "agent" });
    expect(declaredAccess(methodOf(AgentGatewayService, "ControlStream"))).toEqual({ caller: "agent" });
    expect(declaredAccess(methodOf(ApiKeyService, "WhoAmI"))).toEqual({ caller: "operator", role: "viewer" });
    expect(declaredAccess(methodOf(ApiKeyService, "CreateApiKey"))).toEqual({ caller: "operator", role: "admin" });
    expect(declaredAccess(methodOf(AuditService, "VerifyAuditChain"))).toEqual({ caller: "operator", role: "admin" });
  });

  it("refuses to build a policy over a method without the option (fail fast at start-up)", () => {
    expect(() => declaredAccess(methodOf(Health, "Check"))).toThrow(/grpc\.health\.v1\.Health\/Check declares no \(agentgateway\.v1\.access\) option/);
    expect(() => AccessPolicy.fromServices([AgentGatewayService, Health])).toThrow(/declares no/);
  });

  it("refuses served methods outside the policy", () => {
    const policy = AccessPolicy.fromServices([AgentGatewayService]);
    expect(() => policy.assertCovers(AgentGatewayService.methods)).not.toThrow();
    expect(() => policy.assertCovers([...AgentGatewayService.methods, methodOf(AuditService, "ListAuditEvents")])).toThrow(
      /outside the access policy: agentgateway\.admin\.v1\.AuditService\/ListAuditEvents/,
    );
    expect(policy.get(methodOf(AuditService, "ListAuditEvents"))).toBeUndefined();
  });

  it("orders roles viewer < editor < admin", () => {
    expect(roleAllows("admin", "viewer")).toBe(true);
    expect(roleAllows("editor", "editor")).toBe(true);
    expect(roleAllows("viewer", "editor")).toBe(false);
    expect(roleAllows("editor", "admin")).toBe(false);
  });
});
