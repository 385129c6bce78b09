/** `agwctl login`, `whoami`, `logout`: the saved gateway and key. */
import { resolve } from "node:path";
import type { Command } from "commander";
import { ApiKeyService, RoleSchema, type WhoAmIResponse, WhoAmIResponseSchema } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { examples, handle } from "../command-table.js";
import { type ConfigFile, readConfig, removeConfig, resolveSettings, writeConfig } from "../config.js";
import { enumName, type Io } from "../output.js";
import { readSecret } from "../prompt.js";
import { renderFields } from "../table.js";

function describeMe(me: WhoAmIResponse, server: string): Array<[string, string]> {
  return [
    ["server", server],
    ["tenant", `${me.tenantName} (${me.tenantId})`],
    ["key", `${me.key?.name ?? ""} (${me.key?.id ?? ""})`],
    ["role", enumName(RoleSchema, me.key?.role ?? 0).toLowerCase()],
    ["fingerprint", me.key?.displayPrefix ?? ""],
  ];
}

/** Registers login, whoami and logout. */
export function registerSession(program: Command, io: Io): void {
  const login = program
    .command("login")
    .description(
      "Check an operator API key with the gateway and save both in the config file (mode 0600). The key is read from stdin or a prompt that does not echo.",
    );
  examples(
    login,
    "agwctl login --server http://127.0.0.1:7070          # prompts for the key",
    "agwctl login --server https://gw.example.com:7070 --ca-file ca.pem < admin.key",
    "agwctl login --server https://gw.example.com:7070 --ca-pin 3b6a…e1 < admin.key",
  );
  handle(login, io, {
    rpcs: [ApiKeyService.method.whoAmI],
    async run(run) {
      const path = run.configPath;
      const file = readConfig(path);
      // The key to check is never the saved one: login is how a key gets saved.
      const base = resolveSettings(run.globals, io.env, file);
      const apiKey = run.globals.apiKey ?? (io.env.AGW_API_KEY?.trim() || (await readSecret(io, `API key for ${base.server}: `)));
      const me = await run.client(ApiKeyService, base, apiKey).whoAmI({});
      const server = new URL(base.server).origin;
      const config: ConfigFile = {
        server,
        apiKey,
        ...(base.trust.caFile ? { caFile: resolve(base.trust.caFile) } : {}),
        ...(base.trust.pins.length ? { caPins: base.trust.pins } : {}),
        ...(base.trust.systemCa ? { systemCa: true } : {}),
        ...(base.trust.allowInsecureHttp ? { allowInsecureHttp: true } : {}),
      };
      writeConfig(path, config);
      run.out.result(WhoAmIResponseSchema, me, {
        text: () => `Logged in.\n${renderFields(describeMe(me, server), run.out.colour)}\nSaved to ${path} (mode 0600).`,
        ids: () => [me.key?.id ?? ""],
      });
    },
  });

  const whoami = program.command("whoami").description("Show the key in use: its name, role and tenant, and where the settings came from.");
  examples(whoami, "agwctl whoami", "AGW_API_KEY=agwk_… agwctl whoami --server http://127.0.0.1:7070 -o json");
  handle(whoami, io, {
    rpcs: [ApiKeyService.method.whoAmI],
    async run(run) {
      const me = await run.client(ApiKeyService).whoAmI({});
      const settings = run.settings();
      run.out.result(WhoAmIResponseSchema, me, {
        text: () =>
          renderFields(
            [...describeMe(me, `${settings.server} (from ${settings.serverSource})`), ["key source", settings.apiKeySource ?? "-"], ["config", run.configPath]],
            run.out.colour,
          ),
        ids: () => [me.key?.id ?? ""],
      });
    },
  });

  const logout = program
    .command("logout")
    .description("Delete the config file with the saved key. The key itself stays valid; revoke it with `agwctl keys revoke`.");
  examples(logout, "agwctl logout");
  handle(logout, io, {
    rpcs: [],
    async run(run) {
      const path = run.configPath;
      const removed = removeConfig(path);
      run.out.value({ removed, path }, { text: () => (removed ? `Removed ${path}.` : `Not logged in (no ${path}).`) });
    },
  });
}
