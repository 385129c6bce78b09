import { pino, type Logger } from "pino";
import { callLogFields } from "./log-context.js";

/**
 * Paths that may hold secrets anywhere in a log line. Handlers never log request bodies, but
 * a stray object with one of these keys must still come out censored.
 */
export const REDACT_PATHS = [
  "secret",
  "*.secret",
  "token",
  "*.token",
  "sessionToken",
  "*.sessionToken",
  "enrollmentToken",
  "*.enrollmentToken",
  "apiKey",
  "*.apiKey",
  "bootstrapAdminKey",
  "*.bootstrapAdminKey",
  "bootstrapSystemKey",
  "*.bootstrapSystemKey",
  "systemKey",
  "*.systemKey",
  "adminKeySecret",
  "*.adminKeySecret",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "privateKey",
  "*.privateKey",
];

/**
 * The process logger: JSON lines on stdout (or `destination`), secrets redacted by path. Lines
 * written while an RPC runs carry its request id, tenant, agent and trace (log-context.ts).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "agentgateway" },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: callLogFields,
    },
    destination,
  );
}
