import { hostname } from "node:os";
import { ExitError, EXIT } from "./errors.js";

/** Thrown for a bad flag value (exit 2 with the message). */
export function usageError(message: string): ExitError {
  return new ExitError(EXIT.USAGE, message);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "30s", "5m", "1h", "2d" or a plain number of seconds; `allowZero` for "off". */
export function parseDuration(flag: string, value: string, allowZero = false): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  const ms = match?.[1] ? Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? "s"] ?? 1000)) : Number.NaN;
  if (!Number.isFinite(ms) || ms < 0 || (ms === 0 && !allowZero)) throw usageError(`--${flag} must be a duration like 30s, 5m or 1h, got "${value}"`);
  return ms;
}

const UNIT_BYTES: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** Parses "67108864", "64MiB", "64M" (binary), "1GB" (decimal). */
export function parseBytes(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = UNIT_BYTES[(match?.[2] ?? "").toLowerCase()];
  const bytes = match?.[1] && unit !== undefined ? Math.floor(Number(match[1]) * unit) : Number.NaN;
  if (!Number.isFinite(bytes) || bytes <= 0) throw usageError(`--${flag} must be a size like 64MiB or 1GiB, got "${value}"`);
  return bytes;
}

const LABEL_KEY = /^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$/;

/** Parses "k=v,k2=v2" with the gateway's label rules (HostFacts.labels in common.proto). */
export function parseLabels(value: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!value) return labels;
  for (const pair of value.split(",")) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf("=");
    const key = (eq === -1 ? pair : pair.slice(0, eq)).trim();
    const val = eq === -1 ? "" : pair.slice(eq + 1).trim();
    if (key.length > 63 || !LABEL_KEY.test(key))
      throw usageError(`--labels: key "${key}" must be lowercase letters, digits, '.', '_', '/', '-' (at most 63 characters)`);
    if (val.length > 256) throw usageError(`--labels: value of "${key}" is longer than 256 characters`);
    labels[key] = val;
  }
  if (Object.keys(labels).length > 64) throw usageError("--labels: at most 64 labels");
  return labels;
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
