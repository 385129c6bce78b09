/**
 * The command table: every leaf command declares the admin RPCs it calls. The coverage test
 * (cli/command-table.test.ts) compares this table with the admin services' descriptors, so a
 * new RPC without a command fails it; the client guard in cli/context.ts keeps the
 * declarations honest at run time.
 */
import { type DescMethod, getOption } from "@bufbuild/protobuf";
import { Access_Caller, Access_Role, access } from "../gen/agentgateway/v1/access_pb.js";
import type { Command } from "commander";
import { commandPath, type GlobalOptions, Run } from "./context.js";
import { CliError, explain } from "./errors.js";
import type { Io } from "./output.js";

const DECLARED = new WeakMap<Command, readonly DescMethod[]>();

/** How a command runs. */
export interface CommandSpec<O> {
  /** The admin RPCs the command calls (none for local commands like `release keygen`). */
  rpcs: readonly DescMethod[];
  /** Appended to NOT_FOUND errors, e.g. "list agents with `agwctl agents list`". */
  notFound?: string;
  run(run: Run, args: string[], options: O): Promise<void>;
}

/**
 * Makes `cmd` run `spec`: builds the Run context, maps any failure to a CliError with the exit
 * code and the sentence of cli/errors.ts, and closes the command's connections.
 */
export function handle<O>(cmd: Command, io: Io, spec: CommandSpec<O>): Command {
  DECLARED.set(cmd, spec.rpcs);
  const role = requiredRole(spec.rpcs);
  if (role) cmd.addHelpText("after", `\nNeeds an API key with role ${role} or higher (${spec.rpcs.map((m) => m.name).join(", ")}).\n`);
  if (spec.rpcs.some((m) => getOption(m, access).caller === Access_Caller.SYSTEM)) {
    cmd.addHelpText("after", `\nNeeds the provider's system key (AGW_SYSTEM_KEY), not a tenant's API key (${spec.rpcs.map((m) => m.name).join(", ")}).\n`);
  }
  return cmd.action(async (...params: unknown[]) => {
    const command = params[params.length - 1] as Command;
    const path = commandPath(command);
    const args = command.processedArgs.filter((a): a is string => typeof a === "string");
    const run = new Run(io, command.optsWithGlobals<GlobalOptions>(), path, spec.rpcs);
    try {
      await spec.run(run, args, command.opts<Record<string, unknown>>() as O);
    } catch (err) {
      const server = run.serverOrUndefined();
      const connectionError = run.connectionError();
      const explained = explain(err, {
        command: path,
        ...(server ? { server } : {}),
        ...(args[0] ? { subject: args[0] } : {}),
        ...(spec.notFound ? { notFoundHint: spec.notFound } : {}),
        ...(connectionError ? { connectionError } : {}),
        ...(role ? { role } : {}),
      });
      throw new CliError(explained.exitCode, explained.message, explained.code, explained.reason);
    } finally {
      run.close();
    }
  });
}

/** The highest role the RPCs need, from their `access` option ("editor"), or undefined. */
export function requiredRole(rpcs: readonly DescMethod[]): string | undefined {
  const highest = Math.max(Access_Role.UNSPECIFIED, ...rpcs.map((m) => getOption(m, access).role));
  return highest === Access_Role.UNSPECIFIED ? undefined : (Access_Role[highest] ?? "").toLowerCase();
}

/** The RPCs a command declared, or undefined for a command without a handler (a group). */
export function declaredRpcs(cmd: Command): readonly DescMethod[] | undefined {
  return DECLARED.get(cmd);
}

/** Every command below `root`, depth first (groups and leaves). */
export function allCommands(root: Command): Command[] {
  return root.commands.flatMap((c) => [c, ...allCommands(c)]);
}

/** Appends an "Examples" section to a command's help. */
export function examples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText("after", `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`);
}
