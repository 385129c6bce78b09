import { hostname } from "node:os";
import { parseBytes as parseByteSize, parseDurationMs, parseLabels as parseLabelList } from "../../client/values.js";
import { ExitError, EXIT } from "./errors.js";

/** Thrown for a bad flag value (exit 2 with the message). */
export function usageError(message: string): ExitError {
  return new ExitError(EXIT.USAGE, message);
}

/** Parses "250ms", "30s", "5m", "1h", "2d" or a plain number of seconds; `allowZero` for "off". */
export function parseDuration(flag: string, value: string, allowZero = false): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || (ms === 0 && !allowZero)) throw usageError(`--${flag} must be a duration like 30s, 5m or 1h, got "${value}"`);
  return ms;
}

/** Parses "67108864", "64MiB", "64M" (binary), "1GB" (decimal). */
export function parseBytes(flag: string, value: string): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw usageError(`--${flag} must be a size like 64MiB or 1GiB, got "${value}"`);
  return bytes;
}

/** Parses "k=v,k2=v2" with the gateway's label rules (HostFacts.labels in common.proto). */
export function parseLabels(value: string | undefined): Record<string, string> {
  try {
    return parseLabelList(value);
  } catch (err) {
    throw usageError(`--labels: ${(err as Error).message}`);
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The agent name: --name, else the host name made to fit RegisterRequest.name. */
export function agentName(flag: string | undefined): string {
  if (flag !== undefined) {
    if (flag.length > 128 || !NAME.test(flag)) throw usageError(`--name must match ${NAME.source} (at most 128 characters)`);
    return flag;
  }
  const fromHost = hostname()
    .replace(/[^A-Za-z0-9._-]/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 128);
  return fromHost || "agent";
}
