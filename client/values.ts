/**
 * Parsers for the values people type into flags and settings, shared by the gateway's config,
 * the agent and the CLI so that "30s", "64MiB" and "k=v" mean the same everywhere. Each returns
 * undefined (or throws a plain Error naming the problem) and leaves the wording of the final
 * message to its caller, which knows whether it was a flag or an environment variable.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "30s", "5m", "1h", "2d" or a plain number of seconds; undefined if it does not parse. */
export function parseDurationMs(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match?.[1]) return undefined;
  const ms = Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? "s"] ?? 1000));
  return Number.isSafeInteger(ms) ? ms : undefined;
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

/** Parses "67108864", "64MiB", "64M" (binary), "1GB" (decimal); undefined if it does not parse or is not positive. */
export function parseBytes(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = UNIT_BYTES[(match?.[2] ?? "").toLowerCase()];
  const bytes = match?.[1] && unit !== undefined ? Math.floor(Number(match[1]) * unit) : Number.NaN;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** The label rules of the protocol (HostFacts.labels in proto/agentgateway/v1/common.proto). */
export const LABEL_RULES = { keyPattern: /^[a-z0-9]([a-z0-9._/-]*[a-z0-9])?$/, maxKeyLength: 63, maxValueLength: 256, maxLabels: 64 } as const;

/** Parses "k=v,k2=v2" with the protocol's label rules; throws an Error saying which label is wrong. */
export function parseLabels(value: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  if (!value) return labels;
  for (const pair of value.split(",")) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf("=");
    const key = (eq === -1 ? pair : pair.slice(0, eq)).trim();
    const val = eq === -1 ? "" : pair.slice(eq + 1).trim();
    if (key.length > LABEL_RULES.maxKeyLength || !LABEL_RULES.keyPattern.test(key)) {
      throw new Error(`key "${key}" must be lowercase letters, digits, '.', '_', '/', '-' (at most ${LABEL_RULES.maxKeyLength} characters)`);
    }
    if (val.length > LABEL_RULES.maxValueLength) throw new Error(`value of "${key}" is longer than ${LABEL_RULES.maxValueLength} characters`);
    labels[key] = val;
  }
  if (Object.keys(labels).length > LABEL_RULES.maxLabels) throw new Error(`at most ${LABEL_RULES.maxLabels} labels`);
  return labels;
}
