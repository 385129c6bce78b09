// Copies the gateway's settings (server/config/config.ts) into the two deployment files that
// list them: the Helm values schema's `config` key names and docs/operations.md's settings
// table. Run it after adding a setting: `npx tsx scripts/sync-deploy-settings.ts`.
// test/deploy-kubernetes.test.ts and test/deploy-docs.test.ts fail until it has been run.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { configTableMarkdown, SETTINGS } from "../server/config/config.js";
import { CHART_MANAGED } from "../test/support/deploy-files.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const schemaPath = join(ROOT, "deploy/helm/agentgateway/values.schema.json");
const schema = JSON.parse(readFileSync(schemaPath, "utf8")) as { properties: { config: { propertyNames: { enum: string[] } } } };
schema.properties.config.propertyNames.enum = SETTINGS.map((s) => s.env).filter((env) => !CHART_MANAGED.includes(env));
writeFileSync(schemaPath, `${JSON.stringify(schema, null, 2)}\n`);

const docPath = join(ROOT, "docs/operations.md");
const doc = readFileSync(docPath, "utf8");
const marker = /(<!-- config-table[^>]*-->\n)[\s\S]*?(\n<!-- \/config-table -->)/;
if (!marker.test(doc)) throw new Error("docs/operations.md has no config-table markers");
writeFileSync(docPath, doc.replace(marker, (_m, start: string, end: string) => `${start}${configTableMarkdown()}${end}`));
console.log("synced deploy/helm/agentgateway/values.schema.json and docs/operations.md with server/config/config.ts");
