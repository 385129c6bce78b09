/**
 * `agwctl tenants create|list|get|suspend|resume|delete|audit|verify-audit`: the provider plane
 * (TenantService, ProviderAuditService). These commands need the provider's system key, taken
 * from AGW_SYSTEM_KEY when set, else the usual API key (`--api-key`, AGW_API_KEY, login).
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Command } from "commander";
import {
  CreateTenantResponseSchema,
  DeleteTenantResponseSchema,
  GetTenantResponseSchema,
  ListProviderAuditEventsResponseSchema,
  ListTenantsResponseSchema,
  ProviderAuditService,
  ResumeTenantResponseSchema,
  SuspendTenantResponseSchema,
  type Tenant,
  TenantService,
  TenantState,
  TenantStateSchema,
  VerifyProviderAuditChainResponseSchema,
} from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import { examples, handle } from "../command-table.js";
import type { Run } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { collectPages, idArg, intFlag } from "../flags.js";
import { enumName, type Io } from "../output.js";
import { type Cell, paint, relativeTime, renderFields, renderTable, type Style } from "../table.js";
import { dateOf } from "./agent-view.js";

const NOT_FOUND = "list tenants with `agwctl tenants list`";
const STATE_STYLE: Record<number, Style> = { [TenantState.ACTIVE]: "good", [TenantState.SUSPENDED]: "bad" };
const HEADERS = ["ID", "NAME", "STATE", "CREATED", "SUSPENDED", "REASON"];

function stateCell(t: Tenant): Cell {
  return { text: enumName(TenantStateSchema, t.state), style: STATE_STYLE[t.state] ?? "dim" };
}

function tenantRow(t: Tenant): Cell[] {
  return [t.id, t.name, stateCell(t), relativeTime(dateOf(t.createdAt)), relativeTime(dateOf(t.suspendedAt)), t.suspendReason || "-"];
}

function tenantFields(t: Tenant): Array<[string, Cell]> {
  const at = (ts: Tenant["createdAt"]) => (ts ? `${timestampDate(ts).toISOString()} (${relativeTime(timestampDate(ts))})` : "-");
  return [
    ["id", t.id],
    ["name", t.name],
    ["state", stateCell(t)],
    ["created", at(t.createdAt)],
    ["suspended", at(t.suspendedAt)],
    ["reason", t.suspendReason || "-"],
  ];
}

/** A client of a provider service, authenticated with the system key. */
export function provider<S extends DescService>(run: Run, service: S): Client<S> {
  const systemKey = run.io.env.AGW_SYSTEM_KEY;
  return run.client(service, run.settings(), systemKey ? systemKey : run.apiKey());
}

/** Registers the tenants group. */
export function registerTenants(program: Command, io: Io): void {
  const tenants = program
    .command("tenants")
    .description("Tenants of this gateway (the provider plane): needs the system key, from AGW_SYSTEM_KEY or the usual API key settings.");

  const createCmd = tenants
    .command("create")
    .argument("<name>", "lowercase letters, digits and dashes, e.g. acme-prod")
    .option("--admin-key-name <name>", "name of the tenant's first admin key", "bootstrap admin")
    .option("--secret-only", "print only the admin key's secret (for scripts)")
    .description("Create a tenant and its first admin API key. The key's secret is printed once: hand it to the tenant.");
  examples(createCmd, "agwctl tenants create acme-prod", "AGW_SYSTEM_KEY=$(cat system.key) agwctl tenants create acme --secret-only > acme-admin.key");
  handle<{ adminKeyName: string; secretOnly?: boolean }>(createCmd, io, {
    rpcs: [TenantService.method.createTenant],
    async run(run, [name], o) {
      const res = await provider(run, TenantService).createTenant({ name: name ?? "", adminKeyName: o.adminKeyName });
      if (o.secretOnly) {
        run.out.line(res.adminKeySecret);
        return;
      }
      run.out.result(CreateTenantResponseSchema, res, {
        text: () => `Created tenant ${res.tenant?.name ?? ""} (${res.tenant?.id ?? ""}).\nadmin key ${res.adminKeyId}\nsecret: ${res.adminKeySecret}`,
        ids: () => [res.tenant?.id ?? ""],
      });
      run.out.note("The admin key's secret is shown only this once: give it to the tenant (`agwctl login` reads it from stdin).");
    },
  });

  const list = tenants.command("list").alias("ls").option("--limit <n>", "at most this many (0: all)", "0").description("List tenants, newest first.");
  examples(list, "agwctl tenants list", "agwctl tenants list -o json");
  handle<{ limit: string }>(list, io, {
    rpcs: [TenantService.method.listTenants],
    async run(run, _args, o) {
      const client = provider(run, TenantService);
      const { items, next } = await collectPages(
        async (pageToken, pageSize) => {
          const page = await client.listTenants({ pageToken, pageSize });
          return { items: page.tenants, next: page.nextPageToken };
        },
        intFlag("--limit", o.limit, 0, 1_000_000),
        1000,
      );
      run.out.result(ListTenantsResponseSchema, create(ListTenantsResponseSchema, { tenants: items, nextPageToken: next }), {
        text: () => (items.length ? renderTable(HEADERS, items.map(tenantRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2] }) : "No tenants."),
        ids: () => items.map((t) => t.id),
      });
    },
  });

  const get = tenants.command("get").argument("<id>", "tenant ID").description("Show a tenant and what it holds (agents, keys, rollouts, audit records).");
  examples(get, "agwctl tenants get 6f1c2d3e-0a1b-4c2d-8e3f-445566778899");
  handle(get, io, {
    rpcs: [TenantService.method.getTenant],
    notFound: NOT_FOUND,
    async run(run, [id]) {
      const res = await provider(run, TenantService).getTenant({ id: idArg("tenant ID", id) });
      run.out.result(GetTenantResponseSchema, res, {
        text: () =>
          renderFields(
            [
              ...(res.tenant ? tenantFields(res.tenant) : []),
              ["agents", String(res.usage?.agents ?? 0n)],
              ["active API keys", String(res.usage?.activeApiKeys ?? 0n)],
              ["rollouts", String(res.usage?.rollouts ?? 0n)],
              ["audit records", String(res.usage?.auditRecords ?? 0n)],
            ],
            run.out.colour,
          ),
        ids: () => [res.tenant?.id ?? ""],
      });
    },
  });

  const suspend = tenants
    .command("suspend")
    .argument("<id>", "tenant ID")
    .option("--reason <text>", "why (recorded in the provider audit chain and shown by `tenants get`)", "")
    .description("Suspend a tenant: its operators and agents are refused (TENANT_SUSPENDED) and its open streams end, on every replica. Nothing is deleted.");
  examples(suspend, 'agwctl tenants suspend 6f1c… --reason "invoice 2026-11 unpaid"');
  handle<{ reason: string }>(suspend, io, {
    rpcs: [TenantService.method.suspendTenant],
    notFound: NOT_FOUND,
    async run(run, [id], o) {
      const res = await provider(run, TenantService).suspendTenant({ id: idArg("tenant ID", id), reason: o.reason });
      run.out.result(SuspendTenantResponseSchema, res, { text: () => `Suspended tenant ${res.tenant?.name ?? ""} (${res.tenant?.id ?? id}).`, ids: () => [res.tenant?.id ?? ""] });
    },
  });

  const resume = tenants.command("resume").argument("<id>", "tenant ID").description("Lift a tenant's suspension; its agents reconnect on their own. Idempotent.");
  examples(resume, "agwctl tenants resume 6f1c…");
  handle(resume, io, {
    rpcs: [TenantService.method.resumeTenant],
    notFound: NOT_FOUND,
    async run(run, [id]) {
      const res = await provider(run, TenantService).resumeTenant({ id: idArg("tenant ID", id) });
      run.out.result(ResumeTenantResponseSchema, res, { text: () => `Resumed tenant ${res.tenant?.name ?? ""} (${res.tenant?.id ?? id}).`, ids: () => [res.tenant?.id ?? ""] });
    },
  });

  const del = tenants
    .command("delete")
    .argument("<id>", "tenant ID")
    .description("Delete a tenant that never had an agent or a rollout, with its keys, tokens, release keys and audit chain. Refused otherwise: suspend it instead.");
  examples(del, "agwctl tenants delete 6f1c…");
  handle(del, io, {
    rpcs: [TenantService.method.deleteTenant],
    notFound: NOT_FOUND,
    async run(run, [id]) {
      const tenantId = idArg("tenant ID", id);
      const res = await provider(run, TenantService).deleteTenant({ id: tenantId });
      run.out.result(DeleteTenantResponseSchema, res, { text: () => `Deleted tenant ${tenantId}.`, ids: () => [tenantId] });
    },
  });

  const audit = tenants
    .command("audit")
    .option("--after <seq>", "only records after this sequence number", "0")
    .option("--limit <n>", "at most this many", "100")
    .description("List the provider audit chain: every tenant created, suspended, resumed or deleted, and by which system key.");
  examples(audit, "agwctl tenants audit", "agwctl tenants audit --after 120 -o json");
  handle<{ after: string; limit: string }>(audit, io, {
    rpcs: [ProviderAuditService.method.listProviderAuditEvents],
    async run(run, _args, o) {
      const res = await provider(run, ProviderAuditService).listProviderAuditEvents({ afterSeq: BigInt(intFlag("--after", o.after, 0, Number.MAX_SAFE_INTEGER)), pageSize: intFlag("--limit", o.limit, 100, 1000) });
      run.out.result(ListProviderAuditEventsResponseSchema, res, {
        text: () =>
          res.events.length
            ? renderTable(
                ["SEQ", "TIME", "ACTOR", "ACTION", "TARGET"],
                res.events.map((e) => [String(e.seq), relativeTime(dateOf(e.createdAt)), e.actor, e.action, e.target]),
                { width: run.out.width, colour: run.out.colour, fixed: [0] },
              )
            : "No records.",
      });
    },
  });

  const verify = tenants.command("verify-audit").description("Recompute the provider audit chain and report the first broken link. Exits 10 when it is broken.");
  examples(verify, "agwctl tenants verify-audit");
  handle(verify, io, {
    rpcs: [ProviderAuditService.method.verifyProviderAuditChain],
    async run(run) {
      const res = await provider(run, ProviderAuditService).verifyProviderAuditChain({});
      run.out.result(VerifyProviderAuditChainResponseSchema, res, {
        text: () => (res.ok ? `${paint("Provider audit chain intact", "good", run.out.colour)}: ${res.checked} records checked.` : `Provider audit chain BROKEN at record ${res.firstBadSeq}: ${res.message}`),
      });
      if (!res.ok) throw new CliError(EXIT.AUDIT_BROKEN, `the provider audit chain is broken at record ${res.firstBadSeq}: ${res.message}`);
    },
  });
}
