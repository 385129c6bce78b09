import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ErrorObject } from "ajv";
import { parse, parseAllDocuments } from "yaml";
import { SETTINGS } from "../../server/config/config.js";

/** The repository root. */
export const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** Parses a YAML file the way Compose and Kubernetes tools do (YAML 1.1 merge keys on). */
export function readYaml(path: string): unknown {
  return parse(readFileSync(join(REPO, path), "utf8"), { merge: true });
}

/** Every document of a multi-document YAML file (rendered manifests), empty ones dropped. */
export function readYamlDocuments(path: string): unknown[] {
  return parseAllDocuments(readFileSync(join(REPO, path), "utf8"), { merge: true })
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0]?.message}`);
      return d.toJS() as unknown;
    })
    .filter((d) => d !== null && d !== undefined);
}

/** A JSON-schema validator from a file in the repository: returns the errors, empty when valid. */
export function schemaValidator(path: string): (value: unknown) => string[] {
  // Not strict: published schemas use annotations (deprecated, x-*) Ajv's strict mode refuses.
  const ajv = new Ajv({ strict: false, allErrors: true });
  const schema = JSON.parse(readFileSync(join(REPO, path), "utf8")) as { $schema?: string };
  // The compose schema names draft-07 by an https URL Ajv does not know; draft-07 is Ajv's default.
  if (schema.$schema && /draft-07/.test(schema.$schema)) delete schema.$schema;
  const validate = ajv.compile(schema);
  return (value) => (validate(value) ? [] : (validate.errors ?? []).map(describeError));
}

function describeError(e: ErrorObject): string {
  return `${e.instancePath || "/"} ${e.message ?? e.keyword}${e.params && "additionalProperty" in e.params ? ` (${String(e.params.additionalProperty)})` : ""}`;
}

/** The gateway's environment variables (server/config/config.ts), for typo checks. */
export const GATEWAY_ENV = new Set<string>(SETTINGS.map((s) => s.env));

/** Settings the Helm chart sets itself (templates/deployment.yaml), so its `config` must not carry them. */
// Secrets (the bootstrap keys, the CA key) are never offered in the ConfigMap: the chart takes
// them from Secrets. AGW_CA_KEY is not set at all: the chart passes the key as a file
// (AGW_CA_KEY_FILE), so it is in no environment either.
export const CHART_MANAGED = ["AGW_LISTEN", "DATABASE_URL", "AGW_DATA_DIR", "AGW_BOOTSTRAP_ADMIN_KEY", "AGW_BOOTSTRAP_SYSTEM_KEY", "AGW_TLS_CERT", "AGW_TLS_KEY", "AGW_CA_KEY", "AGW_CA_KEY_FILE", "AGW_REPLICA_ID"];
/** Managed settings the Deployment never names: the embedded database's directory, and the CA key (a file instead). */
export const CHART_NEVER_SET = ["AGW_DATA_DIR", "AGW_CA_KEY"];

/** Durations like 10s, 2m, 1h in milliseconds. */
export function durationMs(value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value.trim());
  if (!m) throw new Error(`not a duration: ${value}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}
