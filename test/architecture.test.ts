import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// The layering rules of docs/architecture.md, checked on the source itself (no database): one
// owning store per table, the client side independent of the server, and no file over 400
// lines. Biome's noRestrictedImports (biome.json) holds the import rules of handlers and stores.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Every table and the module(s) allowed to hold SQL for it. Keep docs/architecture.md in step. */
const TABLE_OWNERS: Record<string, string[]> = {
  tenants: ["server/tenancy/tenant-store.ts"],
  system_keys: ["server/tenancy/system-key-store.ts"],
  provider_audit_events: ["server/tenancy/provider-audit-store.ts"],
  provider_audit_head: ["server/tenancy/provider-audit-store.ts"],
  api_keys: ["server/operators/api-key-store.ts"],
  enrollment_tokens: ["server/enrollment/token-store.ts"],
  // One table, two stores split by job: identity and lifecycle columns, and the presence
  // columns the heartbeat flusher and liveness sweeper write in batches.
  agents: ["server/agents/agent-store.ts", "server/agents/agent-presence-store.ts"],
  auth_challenges: ["server/auth/session-store.ts"],
  used_challenges: ["server/auth/session-store.ts"],
  handshake_keys: ["server/auth/handshake-key-store.ts"],
  sessions: ["server/auth/session-store.ts"],
  audit_events: ["server/audit/audit-store.ts"],
  agent_commands: ["server/control/command-store.ts"],
  command_counters: ["server/control/command-store.ts"],
  tenant_commands: ["server/control/command-store.ts"],
  tenant_command_acks: ["server/control/command-store.ts"],
  release_keys: ["server/rollout/release-key-store.ts"],
  rollouts: ["server/rollout/rollout-store.ts"],
  rollout_waves: ["server/rollout/rollout-store.ts"],
  rollout_members: ["server/rollout/rollout-store.ts"],
  telemetry_points: ["server/ingest/ingest-store.ts"],
  agent_events: ["server/ingest/ingest-store.ts"],
  ca_certificates: ["server/ca/ca-store.ts"],
};

/**
 * Statements that touch a table outside its owner, each because it must be ONE statement. The
 * key is "module → table"; every entry must still be needed (a stale one fails the test).
 */
const CROSS_TABLE_ALLOWED: Record<string, string> = {
  "server/auth/session-store.ts → agents":
    "the handshake reads the agent's key and state in one round trip, and the statement that records a challenge's use and upserts the session checks the agent's ACTIVE state in the writing statement, so a concurrent revocation cannot be overtaken",
  "server/auth/session-store.ts → tenants":
    "the session upsert checks in the writing statement that the agent's tenant is not suspended, so a suspended tenant's agent never gets a session row (also when this replica has not heard of the suspension yet)",
  "server/control/command-store.ts → agents":
    "enqueueForAgents inserts one row per listed agent of the tenant (INSERT…SELECT) with the tenant's next sequence, and the delivery query reads each agent's tenant and creation time to pick the tenant-wide notices meant for it in the same round trip",
  "server/rollout/rollout-store.ts → agents":
    "the verifier marks members SUCCEEDED from the heartbeat columns (agent_version, last_seen_at) in one UPDATE…FROM",
  "server/agents/agent-store.ts → sessions": "the stream re-check reads each agent's state and current session in one round trip for a whole bus batch",
};

const QUERY_METHODS = new Set(["selectFrom", "updateTable", "insertInto", "deleteFrom", "innerJoin", "leftJoin", "rightJoin", "fullJoin", "using"]);
const SQL_TABLE_REF = /\b(?:from|into|update|join|using)\s+([a-z_][a-z0-9_]*)/gi;

function sourceFiles(dir: string, includeTests: boolean): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = posix.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path, includeTests));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") && (includeTests || !entry.name.endsWith(".test.ts"))) out.push(path);
  }
  return out;
}

function parse(path: string): ts.SourceFile {
  return ts.createSourceFile(path, readFileSync(join(ROOT, path), "utf8"), ts.ScriptTarget.Latest, true);
}

/** The table names the Kysely schema declares (server/db/schema.ts, interface Schema). */
function schemaTables(): string[] {
  const file = parse("server/db/schema.ts");
  const tables: string[] = [];
  file.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === "Schema") {
      for (const member of node.members) if (member.name && ts.isIdentifier(member.name)) tables.push(member.name.text);
    }
  });
  return tables;
}

/** Every (table, line) a module's queries name: Kysely builder calls and `sql` template text. */
function tablesUsed(file: ts.SourceFile, known: ReadonlySet<string>): Array<{ table: string; line: number }> {
  const found: Array<{ table: string; line: number }> = [];
  const at = (node: ts.Node) => file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1;
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && QUERY_METHODS.has(node.expression.name.text)) {
      const first = node.arguments[0];
      if (first && ts.isStringLiteralLike(first)) {
        const table = first.text.split(/\s+as\s+/i)[0]?.trim() ?? "";
        if (known.has(table)) found.push({ table, line: at(node) });
      }
    }
    if (ts.isTaggedTemplateExpression(node) && ts.isIdentifier(node.tag) && node.tag.text === "sql") {
      const tpl = node.template;
      const text = ts.isNoSubstitutionTemplateLiteral(tpl) ? tpl.text : [tpl.head.text, ...tpl.templateSpans.map((s) => s.literal.text)].join(" ? ");
      for (const match of text.matchAll(SQL_TABLE_REF)) {
        const table = (match[1] ?? "").toLowerCase();
        if (known.has(table)) found.push({ table, line: at(node) });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** Relative import/export/dynamic-import specifiers of a file. */
function importSpecifiers(file: ts.SourceFile): string[] {
  const specs: string[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specs.push(node.moduleSpecifier.text);
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      specs.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return specs;
}

describe("architecture", () => {
  const tables = schemaTables();
  const known = new Set(tables);

  it("names an owner for every table of the schema, and only tables that exist", () => {
    expect(tables.length).toBeGreaterThan(10);
    expect(Object.keys(TABLE_OWNERS).sort()).toEqual([...tables].sort());
    for (const owners of Object.values(TABLE_OWNERS)) for (const owner of owners) expect(sourceFiles("server", false)).toContain(owner);
  });

  it("keeps each table's SQL in its owning store (cross-table statements only where listed)", () => {
    const violations: string[] = [];
    const allowedSeen = new Set<string>();
    for (const path of sourceFiles("server", false)) {
      for (const { table, line } of tablesUsed(parse(path), known)) {
        if (TABLE_OWNERS[table]?.includes(path)) continue;
        const key = `${path} → ${table}`;
        if (key in CROSS_TABLE_ALLOWED) allowedSeen.add(key);
        else violations.push(`${path}:${line} uses ${table}, owned by ${TABLE_OWNERS[table]?.join(", ")}`);
      }
    }
    expect(violations).toEqual([]);
    expect(Object.keys(CROSS_TABLE_ALLOWED).filter((key) => !allowedSeen.has(key))).toEqual([]);
  });

  it("lets only stores (and db/) use Kysely at run time: elsewhere it is imported as types only", () => {
    // Closes the gap the table scan cannot see (sql.raw, table names built at run time): without
    // the `sql` tag or a value import, a service can only call stores.
    const offenders: string[] = [];
    for (const path of sourceFiles("server", false)) {
      if (path.endsWith("-store.ts") || path.startsWith("server/db/")) continue;
      parse(path).forEachChild((node) => {
        if (!ts.isImportDeclaration(node) || !ts.isStringLiteral(node.moduleSpecifier) || !node.moduleSpecifier.text.startsWith("kysely")) return;
        const clause = node.importClause;
        const typeOnly =
          clause !== undefined &&
          (clause.isTypeOnly ||
            (clause.name === undefined && clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.every((e) => e.isTypeOnly)));
        if (!typeOnly) offenders.push(`${path}: ${node.getText()}`);
      });
    }
    expect(offenders).toEqual([]);
  });

  it("leaves transactions to services: no handler opens one", () => {
    const offenders = sourceFiles("server", false).filter((path) => path.endsWith("-handler.ts") && /\.transaction\(\)/.test(readFileSync(join(ROOT, path), "utf8")));
    expect(offenders).toEqual([]);
  });

  it("finds tables in builder calls and sql templates (the scanner itself)", () => {
    const sample = ts.createSourceFile(
      "sample.ts",
      // Joined with "$" so the sample holds real template placeholders.
      ['db.selectFrom("agents as a").innerJoin("sessions", "x", "y"); sql`UPDATE rollouts SET x = ', "{1} FROM unnest(", "{2}) AS v(id) JOIN tenants t ON true`;"].join("$"),
      ts.ScriptTarget.Latest,
      true,
    );
    expect(tablesUsed(sample, known).map((u) => u.table).sort()).toEqual(["agents", "rollouts", "sessions", "tenants"]);
  });

  it("lets agent/, cli/ and client/ import nothing from server/", () => {
    const offenders: string[] = [];
    for (const dir of ["agent", "cli", "client"]) {
      for (const path of sourceFiles(dir, true)) {
        for (const spec of importSpecifiers(parse(path))) {
          if (!spec.startsWith(".")) continue;
          const target = relative(ROOT, resolve(ROOT, dirname(path), spec)).split("\\").join("/");
          if (target === "server" || target.startsWith("server/")) offenders.push(`${path} imports ${spec}`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });

  it("keeps every source file in server/, agent/, cli/ and client/ at 400 lines or fewer", () => {
    const long: string[] = [];
    for (const dir of ["server", "agent", "cli", "client"]) {
      for (const path of sourceFiles(dir, false)) {
        const lines = readFileSync(join(ROOT, path), "utf8").split("\n").length - 1;
        if (lines > 400) long.push(`${path}: ${lines} lines`);
      }
    }
    expect(long).toEqual([]);
  });
});
