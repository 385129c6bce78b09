import { pino, type Logger } from "pino";

/**
 * Paths censored wherever they appear in a log line. The agent never passes secrets to the
 * logger on purpose; this is the safety net for a stray object (a session, an identity, call
 * options with headers).
 */
export const AGENT_REDACT_PATHS = [
  "token",
  "*.token",
  "sessionToken",
  "*.sessionToken",
  "enrollmentToken",
  "*.enrollmentToken",
  "privateKey",
  "*.privateKey",
  "*.*.privateKey",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
];

/** Log levels accepted by --log-level. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** The agent's logger: JSON lines on stderr (stdout is for command output), secrets redacted. */
export function createAgentLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "agw-agent", pid: process.pid },
      redact: { paths: AGENT_REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
