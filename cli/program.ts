/**
 * agwctl's command tree (commander) and its one entry point, runCli, which returns the exit
 * code instead of exiting so tests can run the CLI in-process.
 */
import { createRequire } from "node:module";
import { Command, CommanderError, Option } from "commander";
import { allCommands, examples, handle } from "./command-table.js";
import { registerAgents } from "./commands/agents.js";
import { registerAudit } from "./commands/audit.js";
import { registerCompletion } from "./commands/completion.js";
import { registerKeys } from "./commands/keys.js";
import { registerRelease } from "./commands/release.js";
import { registerRollouts } from "./commands/rollouts.js";
import { registerSession } from "./commands/session.js";
import { registerSystemKey } from "./commands/system-key.js";
import { registerTenants } from "./commands/tenants.js";
import { registerTokens } from "./commands/tokens.js";
import { CliError, EXIT, explain } from "./errors.js";
import { FORMATS, type Io } from "./output.js";

const VERSION = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Builds the whole command tree writing to `io`. */
export function buildProgram(io: Io): Command {
  const program = new Command("agwctl")
    .description("Operate an AgentGateway fleet: enrollment tokens, agents, rollouts, release keys, operator keys and the audit log.")
    .addOption(new Option("-s, --server <url>", "gateway base URL (or AGW_SERVER; default: the one saved by login)"))
    .addOption(new Option("--api-key <key>", "operator API key (prefer AGW_API_KEY or `agwctl login`: flags show in `ps`)"))
    .option("--ca-file <file>", "PEM CA bundle that issued the gateway's certificate (or AGW_CA_FILE)")
    .option("--ca-pin <sha256>", "SHA-256 fingerprint of the gateway's certificate; repeatable (or AGW_CA_PIN)", collect)
    .option("--system-ca", "trust the system CA store (publicly issued certificates)")
    .option("--allow-insecure-http", "allow http:// to a host that is not loopback")
    .addOption(new Option("-o, --format <format>", "output format").choices(FORMATS).default("table"))
    .option("-q, --quiet", "print only IDs (or nothing); notes on stderr are suppressed")
    .option("--timeout <duration>", "deadline of each call", "20s")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(`agwctl: ${s.replace(/^error: /, "")}`),
    })
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  examples(
    program,
    "agwctl login --server https://gw.example.com:7070 --ca-pin 3b:6a:…",
    "agwctl tokens create --ttl 1h --approval --labels site=ams",
    "agwctl agents list --state pending",
    "agwctl rollouts watch 6f1c…",
  );
  registerSession(program, io);
  registerTokens(program, io);
  registerAgents(program, io);
  registerRollouts(program, io);
  registerRelease(program, io);
  registerKeys(program, io);
  registerAudit(program, io);
  registerTenants(program, io);
  registerSystemKey(program, io);
  registerCompletion(program, io);
  // No --version flag: `release sign --version` and `agents list --version` are the release's.
  const version = program.command("version").description("Print the agwctl version.");
  handle(version, io, { rpcs: [], run: async (run) => run.out.value({ version: VERSION }, { text: () => `agwctl ${VERSION}` }) });
  // Parents list each command by its first sentence; `--help` of the command shows it all.
  for (const cmd of allCommands(program)) if (!cmd.summary()) cmd.summary(cmd.description().split(/(?<=\.)\s/)[0] ?? "");
  return program;
}

/** Runs agwctl with `argv` (without node and the script) and returns the exit code. */
export async function runCli(argv: string[], io: Io): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed the message (or the help / version).
      return err.code === "commander.helpDisplayed" ? EXIT.OK : EXIT.USAGE;
    }
    const explained = explain(err, { command: argv.join(" ") });
    const failure = err instanceof CliError ? err : new CliError(explained.exitCode, explained.message);
    if (program.opts<{ format?: string }>().format === "json") {
      io.stderr.write(
        `${JSON.stringify({ error: { exitCode: failure.exitCode, message: failure.message, ...(failure.code ? { code: failure.code } : {}), ...(failure.reason ? { reason: failure.reason } : {}) } })}\n`,
      );
    } else {
      io.stderr.write(`agwctl: ${failure.message}\n`);
    }
    return failure.exitCode;
  }
}
