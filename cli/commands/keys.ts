/** `agwctl keys create|list|revoke`: operator API keys (ApiKeyService). */
import { create } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  type ApiKey,
  ApiKeyService,
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  RevokeApiKeyResponseSchema,
  type Role,
  RoleSchema,
} from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { examples, handle } from "../command-table.js";
import { idArg } from "../flags.js";
import { enumChoices, enumName, type Io, parseEnum } from "../output.js";
import { type Cell, relativeTime, renderTable } from "../table.js";
import { dateOf } from "./agent-view.js";

const HEADERS = ["ID", "NAME", "ROLE", "FINGERPRINT", "CREATED", "LAST USED", "REVOKED"];

function keyRow(k: ApiKey): Cell[] {
  return [
    k.id,
    k.name,
    enumName(RoleSchema, k.role).toLowerCase(),
    k.displayPrefix,
    relativeTime(dateOf(k.createdAt)),
    relativeTime(dateOf(k.lastUsedAt)),
    k.revokedAt ? { text: relativeTime(dateOf(k.revokedAt)), style: "bad" } : "-",
  ];
}

/** Registers the keys group. */
export function registerKeys(program: Command, io: Io): void {
  const keys = program.command("keys").description("Operator API keys (role admin): who may use agwctl and the admin API, with which role.");

  const createCmd = keys
    .command("create")
    .requiredOption("--name <name>", "who or what uses it, e.g. ci-deploy")
    .requiredOption("--role <role>", `what it may do: ${enumChoices(RoleSchema).join(", ")}`)
    .option("--secret-only", "print only the secret (for scripts)")
    .description("Create an operator API key. The secret is printed once.");
  examples(createCmd, "agwctl keys create --name alice --role editor", "agwctl keys create --name grafana --role viewer --secret-only > grafana.key");
  handle<{ name: string; role: string; secretOnly?: boolean }>(createCmd, io, {
    rpcs: [ApiKeyService.method.createApiKey],
    async run(run, _args, o) {
      const res = await run.client(ApiKeyService).createApiKey({ name: o.name, role: parseEnum(RoleSchema, "--role", o.role) as Role });
      if (o.secretOnly) {
        run.out.line(res.secret);
        return;
      }
      run.out.result(CreateApiKeyResponseSchema, res, {
        text: () =>
          `Created key ${res.key?.name ?? ""} (${res.key?.id ?? ""}), role ${enumName(RoleSchema, res.key?.role ?? 0).toLowerCase()}.\nsecret: ${res.secret}`,
        ids: () => [res.key?.id ?? ""],
      });
      run.out.note("The secret is shown only this once: give it to its user (`agwctl login` reads it from stdin).");
    },
  });

  const list = keys.command("list").alias("ls").option("--all", "include revoked keys").description("List operator API keys (never their secrets).");
  examples(list, "agwctl keys list", "agwctl keys list --all -o json");
  handle<{ all?: boolean }>(list, io, {
    rpcs: [ApiKeyService.method.listApiKeys],
    async run(run, _args, o) {
      const res = await run.client(ApiKeyService).listApiKeys({ includeRevoked: o.all === true });
      run.out.result(ListApiKeysResponseSchema, create(ListApiKeysResponseSchema, res), {
        text: () =>
          res.keys.length ? renderTable(HEADERS, res.keys.map(keyRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2] }) : "No keys.",
        ids: () => res.keys.map((k) => k.id),
      });
    },
  });

  const revoke = keys
    .command("revoke")
    .argument("<id>", "key ID")
    .description("Revoke an operator API key; calls with it fail at once. A key cannot revoke itself.");
  examples(revoke, "agwctl keys revoke 6f1c…");
  handle(revoke, io, {
    rpcs: [ApiKeyService.method.revokeApiKey],
    notFound: "list keys with `agwctl keys list`",
    async run(run, [id]) {
      const res = await run.client(ApiKeyService).revokeApiKey({ id: idArg("key ID", id) });
      run.out.result(RevokeApiKeyResponseSchema, res, { text: () => `Revoked key ${res.key?.name ?? ""} (${id}).`, ids: () => [res.key?.id ?? ""] });
    },
  });
}
