/** agwctl, the operator CLI (docs/cli.md). Started by bin/agwctl.js through tsx. */
import { runCli } from "./program.js";

process.exitCode = await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env });
