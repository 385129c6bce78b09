import { enroll, ENROLL_USAGE } from "./cmd/enroll.js";
import { refresh, REFRESH_USAGE } from "./cmd/refresh.js";
import { run, RUN_USAGE } from "./cmd/run.js";
import { status, STATUS_USAGE } from "./cmd/status.js";
import { EXIT, ExitError } from "./lib/errors.js";
import { AGENT_VERSION } from "./lib/version.js";

/**
 * `agw-agent`: the AgentGateway reference agent. Entry point of bin/agw-agent.js and of
 * `npx tsx agent/main.ts …`. Reference: docs/agent.md.
 */
const USAGE = `usage: agw-agent <command> [flags]   (agw-agent <command> --help for its flags)

${ENROLL_USAGE}

${RUN_USAGE}

${STATUS_USAGE}

${REFRESH_USAGE}

Common flags: --state-dir DIR (default /var/lib/agw-agent, or AGW_AGENT_STATE_DIR),
              --log-level trace|debug|info|warn|error|fatal|silent (logs are JSON on stderr)
Exit codes: 0 ok, 1 failure, 2 usage, 75 try again later, 78 revoked (do not restart),
            79 not enrolled / registration rejected or retired (enroll again).`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { enroll, run, status, refresh };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "version" || command === "--version") {
    console.log(AGENT_VERSION);
    return EXIT.OK;
  }
  if (!command || command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return command ? EXIT.OK : EXIT.USAGE;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    console.error(`agw-agent: unknown command "${command}"\n\n${USAGE}`);
    return EXIT.USAGE;
  }
  return await handler(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ExitError) {
      console.error(`agw-agent: ${err.message}`);
      process.exit(err.exitCode);
    }
    // parseArgs reports unknown or malformed flags with these codes.
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code.startsWith("ERR_PARSE_ARGS")) {
      console.error(`agw-agent: ${(err as Error).message}\n(agw-agent <command> --help lists the flags)`);
      process.exit(EXIT.USAGE);
    }
    console.error("agw-agent: unexpected error:", err);
    process.exit(EXIT.FAILURE);
  },
);
