/** `agwctl audit list|verify|export`: the tenant's hash-chained audit log (AuditService). */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { create, toJson } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  type AuditEvent,
  AuditEventSchema,
  AuditService,
  ListAuditEventsResponseSchema,
  VerifyAuditChainResponseSchema,
} from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { examples, handle } from "../command-table.js";
import { CliError, EXIT, usage } from "../errors.js";
import { durationFlag, idArg, intFlag } from "../flags.js";
import type { Io } from "../output.js";
import { type Cell, paint, renderFields, renderTable } from "../table.js";
import { dateOf } from "./agent-view.js";

const HEADERS = ["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DATA"];

function eventRow(e: AuditEvent): Cell[] {
  return [String(e.seq), dateOf(e.createdAt)?.toISOString() ?? "-", e.actor, e.action, e.target, e.data ? JSON.stringify(e.data) : "-"];
}

function seqFlag(flag: string, value: string | undefined): bigint {
  if (value === undefined) return 0n;
  if (!/^\d{1,19}$/.test(value)) throw usage(`${flag} must be a sequence number (0 or more), got "${value}"`);
  return BigInt(value);
}

/** The target of `--target` or `--agent ID` ("agent:ID"), or "" for all; both at once is a usage error. */
export function targetFlag(o: { target?: string; agent?: string }): string {
  if (o.target !== undefined && o.agent !== undefined) throw usage("give --target or --agent, not both");
  if (o.agent !== undefined) return `agent:${idArg("--agent", o.agent)}`;
  if (o.target === undefined) return "";
  if (!/^[a-z_]+:[A-Za-z0-9._:-]+$/.test(o.target)) throw usage(`--target must look like agent:ID or rollout:ID, got "${o.target}"`);
  return o.target;
}

/** The cursor stored in a --cursor-file: the last exported seq; 0 when the file does not exist yet. */
export function readCursor(path: string): bigint {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0n;
    throw err;
  }
  if (!/^\d{1,19}$/.test(text)) throw usage(`${path} does not hold an audit cursor (a sequence number); remove it to export from the start`);
  return BigInt(text);
}

/** Replaces the cursor file atomically, so a crash leaves the old or the new cursor, never half of one. */
export function writeCursor(path: string, seq: bigint): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${seq}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

interface ListOptions {
  after?: string;
  action?: string;
  target?: string;
  agent?: string;
  limit: string;
  follow?: boolean;
  interval: string;
}

/** Registers the audit group. */
export function registerAudit(program: Command, io: Io): void {
  const audit = program.command("audit").description("The audit log (role admin): every state change, in a per-tenant hash chain.");

  const list = audit
    .command("list")
    .alias("ls")
    .option("--after <seq>", "only records after this sequence number")
    .option("--action <action>", "only this action, e.g. agent.revoked")
    .option("--target <target>", "only records about this target, as recorded: agent:ID, rollout:ID, api_key:ID, …")
    .option("--agent <id>", "only records about this agent (the same as --target agent:ID)")
    .option("--limit <n>", "at most this many (0: all)", "100")
    .option("-f, --follow", "keep printing new records as they are written (one JSON object per line with -o json)")
    .option("--interval <duration>", "how often --follow asks the gateway", "2s")
    .description("List audit records in chain order.");
  examples(list, "agwctl audit list --action agent.revoked", "agwctl audit list --agent 6f1c…", "agwctl audit list --after 120 --follow");
  handle<ListOptions>(list, io, {
    rpcs: [AuditService.method.listAuditEvents],
    async run(run, _args, o) {
      const client = run.client(AuditService);
      const action = o.action ?? "";
      const target = targetFlag(o);
      const limit = intFlag("--limit", o.limit, 100, 1_000_000);
      let after = seqFlag("--after", o.after);
      if (!o.follow) {
        const events: AuditEvent[] = [];
        let next = after;
        for (let pages = 0; pages < 100_000; pages++) {
          const want = limit === 0 ? 1000 : Math.min(1000, limit - events.length);
          const res = await client.listAuditEvents({ afterSeq: next, pageSize: want, action, target });
          events.push(...res.events);
          next = res.nextAfterSeq;
          if (next === 0n || (limit !== 0 && events.length >= limit)) break;
        }
        run.out.result(ListAuditEventsResponseSchema, create(ListAuditEventsResponseSchema, { events, nextAfterSeq: next }), {
          text: () =>
            events.length ? renderTable(HEADERS, events.map(eventRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 1] }) : "No audit records.",
        });
        if (next !== 0n) run.out.note(`More records: agwctl audit list --after ${next}${action ? ` --action ${action}` : ""}${target ? ` --target ${target}` : ""}`);
        return;
      }
      const interval = durationFlag("--interval", o.interval) ?? 2000;
      for (;;) {
        const res = await client.listAuditEvents({ afterSeq: after, pageSize: 1000, action, target });
        for (const e of res.events) {
          run.out.item(AuditEventSchema, e, {
            text: () =>
              eventRow(e)
                .map((c) => (typeof c === "string" ? c : c.text))
                .join("  "),
          });
          if (e.seq > after) after = e.seq;
        }
        if (res.nextAfterSeq !== 0n) continue;
        await new Promise((r) => setTimeout(r, interval));
      }
    },
  });

  const verify = audit.command("verify").description("Recompute the hash chain and report the first broken link. Exits 10 when the chain is broken.");
  examples(verify, "agwctl audit verify", "agwctl audit verify -o json");
  handle(verify, io, {
    rpcs: [AuditService.method.verifyAuditChain],
    async run(run) {
      const res = await run.client(AuditService).verifyAuditChain({});
      run.out.result(VerifyAuditChainResponseSchema, res, {
        text: () =>
          res.ok
            ? `${paint("Audit chain intact", "good", run.out.colour)}: ${res.checked} records checked.`
            : renderFields(
                [
                  ["audit chain", { text: "BROKEN", style: "bad" }],
                  ["first bad record", String(res.firstBadSeq)],
                  ["records checked", String(res.checked)],
                  ["detail", res.message],
                ],
                run.out.colour,
              ),
      });
      if (!res.ok)
        throw new CliError(
          EXIT.AUDIT_BROKEN,
          `the audit chain is broken at record ${res.firstBadSeq}: ${res.message}. Records from there on may have been altered; investigate before trusting them`,
        );
    },
  });

  const exportCmd = audit
    .command("export")
    .option("--after <seq>", "start after this sequence number (the cursor printed by the previous export)")
    .option("--cursor-file <file>", "read the cursor from FILE (if it exists) and write it back after every page: resumable SIEM pulls")
    .option("--page-size <n>", "records per call", "1000")
    .description(
      "Write audit records as NDJSON (one AuditEvent in protobuf JSON per line) from a cursor to the end, then print the cursor to resume from. Delivery is at least once: dedupe on seq.",
    );
  examples(
    exportCmd,
    "agwctl audit export --cursor-file /var/lib/siem/agw.cursor >> audit.ndjson",
    "agwctl audit export --after 1200 | jq -c 'select(.action == \"agent.revoked\")'",
  );
  handle<{ after?: string; cursorFile?: string; pageSize: string }>(exportCmd, io, {
    rpcs: [AuditService.method.listAuditEvents],
    async run(run, _args, o) {
      if (o.after !== undefined && o.cursorFile) throw usage("give --after or --cursor-file, not both");
      const pageSize = intFlag("--page-size", o.pageSize, 1000, 1000) || 1000;
      let cursor = o.cursorFile ? readCursor(o.cursorFile) : seqFlag("--after", o.after);
      let exported = 0;
      const client = run.client(AuditService);
      for (let pages = 0; pages < 10_000_000; pages++) {
        const res = await client.listAuditEvents({ afterSeq: cursor, pageSize });
        for (const e of res.events) run.out.line(JSON.stringify(toJson(AuditEventSchema, e, { alwaysEmitImplicit: true })));
        exported += res.events.length;
        const last = res.events.at(-1);
        if (last) cursor = last.seq;
        // The records are on stdout before the cursor moves past them: a crash repeats a page, never skips one.
        if (o.cursorFile && last) writeCursor(o.cursorFile, cursor);
        if (res.nextAfterSeq === 0n || res.events.length === 0) break;
      }
      run.out.note(`Exported ${exported} records; cursor ${cursor} (resume with --after ${cursor}${o.cursorFile ? ` or the same --cursor-file` : ""}).`);
    },
  });
}
