/** `agwctl tokens create|list|revoke`: enrollment tokens (EnrollmentTokenService). */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import {
  CreateEnrollmentTokenResponseSchema,
  type EnrollmentToken,
  EnrollmentTokenService,
  EnrollmentTokenState,
  EnrollmentTokenStateSchema,
  ListEnrollmentTokensResponseSchema,
  RevokeEnrollmentTokenResponseSchema,
} from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { examples, handle } from "../command-table.js";
import { collectPages, durationFlag, idArg, intFlag, labelsFlag } from "../flags.js";
import { enumName, type Io } from "../output.js";
import { type Cell, formatLabels, relativeTime, renderFields, renderTable, type Style } from "../table.js";

const NOT_FOUND = "list tokens with `agwctl tokens list --all`";

const STATE_STYLE: Record<number, Style> = {
  [EnrollmentTokenState.ACTIVE]: "good",
  [EnrollmentTokenState.USED]: "dim",
  [EnrollmentTokenState.EXPIRED]: "dim",
  [EnrollmentTokenState.REVOKED]: "bad",
};

function tokenRow(t: EnrollmentToken): Cell[] {
  return [
    t.id,
    t.displayPrefix,
    { text: enumName(EnrollmentTokenStateSchema, t.state), style: STATE_STYLE[t.state] ?? "dim" },
    `${t.usesLeft}/${t.maxUses}`,
    t.requiresApproval ? "yes" : "no",
    t.pinnedAgentName || "-",
    formatLabels(t.labels),
    relativeTime(t.expiresAt ? timestampDate(t.expiresAt) : undefined),
    t.description || "-",
  ];
}

const HEADERS = ["ID", "FINGERPRINT", "STATE", "USES", "APPROVAL", "NAME", "LABELS", "EXPIRES", "DESCRIPTION"];

function tokenFields(t: EnrollmentToken): Array<[string, Cell]> {
  const at = (ts: Parameters<typeof timestampDate>[0] | undefined) => (ts ? `${timestampDate(ts).toISOString()} (${relativeTime(timestampDate(ts))})` : "-");
  return [
    ["id", t.id],
    ["fingerprint", t.displayPrefix],
    ["state", { text: enumName(EnrollmentTokenStateSchema, t.state), style: STATE_STYLE[t.state] ?? "dim" }],
    ["uses left", `${t.usesLeft} of ${t.maxUses}`],
    ["approval", t.requiresApproval ? "required" : "not required"],
    ["pinned name", t.pinnedAgentName || "-"],
    ["labels", formatLabels(t.labels)],
    ["expires", at(t.expiresAt)],
    ["created", at(t.createdAt)],
    ["description", t.description || "-"],
  ];
}

interface CreateOptions {
  ttl?: string;
  uses?: string;
  name?: string;
  labels?: string[];
  approval?: boolean;
  description?: string;
  secretOnly?: boolean;
}

/** Registers the tokens group. */
export function registerTokens(program: Command, io: Io): void {
  const tokens = program.command("tokens").description("Enrollment tokens: the one-time secrets new agents enroll with.");

  const createCmd = tokens
    .command("create")
    .description("Mint an enrollment token. The secret is printed once; the gateway keeps only its hash.")
    .option("--ttl <duration>", "lifetime, 1m to 30d (gateway default 1h)")
    .option("--uses <n>", "how many agents may enroll with it (gateway default 1)")
    .option("--name <agent-name>", "only an agent with exactly this name may enroll")
    .option("--labels <k=v,...>", "labels given to every agent enrolled with it; repeatable", (v: string, p: string[] = []) => [...p, v])
    .option("--approval", "agents enrolled with it wait for `agwctl agents approve`")
    .option("--description <text>", "a note for operators, e.g. rack 12 probes")
    .option("--secret-only", "print only the secret (for scripts)");
  examples(
    createCmd,
    "agwctl tokens create --ttl 2h --uses 10 --labels site=ams,role=probe --approval",
    "TOKEN=$(agwctl tokens create --name web-1 --secret-only)",
  );
  handle<CreateOptions>(createCmd, io, {
    rpcs: [EnrollmentTokenService.method.createEnrollmentToken],
    async run(run, _args, o) {
      const ttlMs = durationFlag("--ttl", o.ttl);
      const res = await run.client(EnrollmentTokenService).createEnrollmentToken({
        ...(ttlMs !== undefined ? { ttl: durationFromMs(ttlMs) } : {}),
        maxUses: intFlag("--uses", o.uses, 0, 10_000),
        pinnedAgentName: o.name ?? "",
        labels: labelsFlag("--labels", o.labels),
        requiresApproval: o.approval === true,
        description: o.description ?? "",
      });
      if (o.secretOnly) {
        run.out.line(res.secret);
        return;
      }
      run.out.result(CreateEnrollmentTokenResponseSchema, res, {
        text: () => `${res.token ? renderFields(tokenFields(res.token), run.out.colour) : ""}\nsecret:      ${res.secret}`,
        ids: () => [res.token?.id ?? ""],
      });
      run.out.note("The secret is shown only this once: hand it to the agent's installer (agw-agent enroll --token-file FILE).");
    },
  });

  const list = tokens
    .command("list")
    .alias("ls")
    .description("List enrollment tokens, newest first (without their secrets).")
    .option("--all", "include used, expired and revoked tokens")
    .option("--limit <n>", "at most this many (0: all)", "500");
  examples(list, "agwctl tokens list", "agwctl tokens list --all -o json");
  handle<{ all?: boolean; limit: string }>(list, io, {
    rpcs: [EnrollmentTokenService.method.listEnrollmentTokens],
    async run(run, _args, o) {
      const client = run.client(EnrollmentTokenService);
      const { items, next } = await collectPages(
        async (pageToken, pageSize) => {
          const res = await client.listEnrollmentTokens({ includeInactive: o.all === true, pageToken, pageSize });
          return { items: res.tokens, next: res.nextPageToken };
        },
        intFlag("--limit", o.limit, 500, 1_000_000),
        500,
      );
      run.out.result(ListEnrollmentTokensResponseSchema, create(ListEnrollmentTokensResponseSchema, { tokens: items, nextPageToken: next }), {
        text: () =>
          items.length
            ? renderTable(HEADERS, items.map(tokenRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2, 3] })
            : o.all
              ? "No tokens."
              : "No active tokens (--all shows used, expired and revoked ones).",
        ids: () => items.map((t) => t.id),
      });
      if (next) run.out.note("More tokens exist: raise --limit.");
    },
  });

  const revoke = tokens.command("revoke").argument("<id>", "token ID").description("Revoke a token so no more agents can enroll with it. Idempotent.");
  examples(revoke, "agwctl tokens revoke 6f1c2d3e-0a1b-4c2d-8e3f-445566778899");
  handle(revoke, io, {
    rpcs: [EnrollmentTokenService.method.revokeEnrollmentToken],
    notFound: NOT_FOUND,
    async run(run, [id]) {
      const res = await run.client(EnrollmentTokenService).revokeEnrollmentToken({ id: idArg("token ID", id) });
      run.out.result(RevokeEnrollmentTokenResponseSchema, res, {
        text: () => `Revoked token ${res.token?.id ?? id} (${res.token?.displayPrefix ?? ""}).`,
        ids: () => [res.token?.id ?? ""],
      });
    },
  });
}
