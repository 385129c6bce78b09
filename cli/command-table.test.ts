import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type DescService, getOption } from "@bufbuild/protobuf";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { Access_Caller, access } from "../gen/agentgateway/v1/access_pb.js";
import { allCommands, declaredRpcs, requiredRole } from "./command-table.js";
import { EXIT } from "./errors.js";
import { commandPath, Run, rpcName } from "./context.js";
import type { Io } from "./output.js";
import { buildProgram } from "./program.js";

const GEN = fileURLToPath(new URL("../gen/agentgateway", import.meta.url));

/** Every service in gen/agentgateway, found by walking the directory, so a new file counts too. */
async function generatedServices(): Promise<DescService[]> {
  const files = readdirSync(GEN, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"));
  const services: DescService[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(GEN, file)).href)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      if (typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === "service") services.push(value as DescService);
    }
  }
  return services;
}

function fakeIo(): Io {
  const sink = { write: () => true };
  return { stdout: sink, stderr: sink, stdin: new PassThrough(), env: {} };
}

describe("the command table", () => {
  it("reaches every admin RPC from a command, and declares only RPCs that exist", async () => {
    const services = await generatedServices();
    const admin = services.filter((s) => s.typeName.startsWith("agentgateway.admin."));
    expect(admin.map((s) => s.name).sort()).toEqual(
      expect.arrayContaining(["AgentService", "ApiKeyService", "AuditService", "EnrollmentTokenService", "ReleaseKeyService", "RolloutService"]),
    );
    // Admin and provider services, plus any RPC anywhere that operators (or the provider) call with their key.
    const operatorRpcs = services
      .flatMap((s) => s.methods)
      .filter(
        (m) =>
          m.parent.typeName.startsWith("agentgateway.admin.") ||
          m.parent.typeName.startsWith("agentgateway.provider.") ||
          getOption(m, access).caller === Access_Caller.OPERATOR ||
          getOption(m, access).caller === Access_Caller.SYSTEM,
      )
      .map(rpcName);
    expect(operatorRpcs.length).toBeGreaterThan(30);
    const commands = allCommands(buildProgram(fakeIo()));
    const declared = new Set(commands.flatMap((c) => (declaredRpcs(c) ?? []).map(rpcName)));
    expect(operatorRpcs.filter((m) => !declared.has(m))).toEqual([]);
    const all = new Set(services.flatMap((s) => s.methods).map(rpcName));
    expect([...declared].filter((m) => !all.has(m))).toEqual([]);
  });

  it("gives every command a handler or subcommands, and every handler help with an example", () => {
    const program = buildProgram(fakeIo());
    for (const cmd of allCommands(program)) {
      const path = commandPath(cmd);
      if (cmd.commands.length) continue;
      expect(declaredRpcs(cmd), `${path} has no handler`).toBeDefined();
      if (path === "version") continue;
      let help = "";
      cmd.configureOutput({ writeOut: (s) => (help += s) });
      cmd.outputHelp();
      expect(help, path).toMatch(/Examples:\n {2}\$ .*agwctl /);
      expect(cmd.description().length, path).toBeGreaterThan(10);
    }
  });

  it("names the role a command needs from the RPCs' access option", () => {
    const byPath = new Map(allCommands(buildProgram(fakeIo())).map((c) => [commandPath(c), declaredRpcs(c) ?? []]));
    expect(requiredRole(byPath.get("agents list") ?? [])).toBe("viewer");
    expect(requiredRole(byPath.get("agents approve") ?? [])).toBe("editor");
    expect(requiredRole(byPath.get("keys create") ?? [])).toBe("admin");
    expect(requiredRole(byPath.get("release keygen") ?? [])).toBeUndefined();
  });

  it("refuses, before any network, a call the command did not declare", async () => {
    const run = new Run(
      { ...fakeIo(), env: { XDG_CONFIG_HOME: "/nonexistent/agwctl-test", AGW_SERVER: "http://127.0.0.1:9", AGW_API_KEY: "k" } },
      { format: "table", timeout: "5s" },
      "tokens list",
      [],
    );
    try {
      await expect(run.client(ApiKeyService).whoAmI({})).rejects.toThrow(
        /agwctl bug: `tokens list` calls agentgateway.admin.v1.ApiKeyService\/WhoAmI without declaring it/,
      );
    } finally {
      run.close();
    }
  });
});

describe("docs/cli.md", () => {
  const doc = readFileSync(fileURLToPath(new URL("../docs/cli.md", import.meta.url)), "utf8");

  it("lists every command with the RPCs it calls and the role they need", () => {
    const rows = doc.split("\n").filter((l) => l.startsWith("| `agwctl "));
    for (const cmd of allCommands(buildProgram(fakeIo()))) {
      const rpcs = declaredRpcs(cmd);
      if (rpcs === undefined) continue;
      const path = commandPath(cmd);
      const row = rows.find((r) => r.split("|")[1]?.includes(`\`agwctl ${path}\``));
      expect(row, `docs/cli.md has no row for agwctl ${path}`).toBeDefined();
      const [, , rpcCell = "", roleCell = ""] = row?.split("|") ?? [];
      const documented = [...rpcCell.matchAll(/`(\w+)\.(\w+)`/g)].map((m) => `${m[1]}.${m[2]}`).sort();
      expect(documented, path).toEqual(rpcs.map((m) => `${m.parent.name}.${m.name}`).sort());
      expect(roleCell.trim(), path).toBe(requiredRole(rpcs) ?? "");
    }
  });

  it("documents every exit code", () => {
    for (const [name, code] of Object.entries(EXIT)) expect(doc, name).toMatch(new RegExp(`^\\| ${code} \\| `, "m"));
  });
});
