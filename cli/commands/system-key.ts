/**
 * `agwctl system-key whoami|rotate`: the provider's own credential (SystemKeyService). Like
 * `agwctl tenants`, these use AGW_SYSTEM_KEY when set, else the usual API key settings.
 */
import type { Command } from "commander";
import { RotateSystemKeyResponseSchema, SystemKeyService, WhoAmIResponseSchema } from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import { examples, handle } from "../command-table.js";
import type { Io } from "../output.js";
import { relativeTime, renderFields } from "../table.js";
import { dateOf } from "./agent-view.js";
import { provider } from "./tenants.js";

/** Registers the system-key group. */
export function registerSystemKey(program: Command, io: Io): void {
  const group = program.command("system-key").description("The provider's system key (agwp_…): show which one you use, rotate it.");

  const whoami = group.command("whoami").description("Show the system key this command authenticates with (never its secret).");
  examples(whoami, "AGW_SYSTEM_KEY=$(cat system.key) agwctl system-key whoami");
  handle(whoami, io, {
    rpcs: [SystemKeyService.method.whoAmI],
    async run(run) {
      const res = await provider(run, SystemKeyService).whoAmI({});
      run.out.result(WhoAmIResponseSchema, res, {
        text: () =>
          renderFields(
            [
              ["id", res.key?.id ?? ""],
              ["name", res.key?.name ?? ""],
              ["fingerprint", res.key?.displayPrefix ?? ""],
              ["created", relativeTime(dateOf(res.key?.createdAt))],
            ],
            run.out.colour,
          ),
        ids: () => [res.key?.id ?? ""],
      });
    },
  });

  const rotate = group
    .command("rotate")
    .option("--name <name>", 'name of the new key (default "rotated <UTC time>")', "")
    .option("--secret-only", "print only the new key's secret (for scripts)")
    .description(
      "Replace the system key: the new key's secret is printed once, and the key you called with stops working at once on every replica. Store the new secret before anything else.",
    );
  examples(rotate, "AGW_SYSTEM_KEY=$(cat system.key) agwctl system-key rotate --secret-only > system.key.new && mv system.key.new system.key");
  handle<{ name: string; secretOnly?: boolean }>(rotate, io, {
    rpcs: [SystemKeyService.method.rotateSystemKey],
    async run(run, _args, o) {
      const res = await provider(run, SystemKeyService).rotateSystemKey({ name: o.name });
      if (o.secretOnly) {
        run.out.line(res.secret);
        return;
      }
      run.out.result(RotateSystemKeyResponseSchema, res, {
        text: () => `Rotated the system key: ${res.revokedKeyId} is revoked.\nnew key ${res.key?.id ?? ""} (${res.key?.name ?? ""}, ${res.key?.displayPrefix ?? ""})\nsecret: ${res.secret}`,
        ids: () => [res.key?.id ?? ""],
      });
      run.out.note("The new secret is shown only this once, and the old key no longer works: update AGW_SYSTEM_KEY (and the Secret holding AGW_BOOTSTRAP_SYSTEM_KEY, which is read on first start only).");
    },
  });
}
