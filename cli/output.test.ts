import { create } from "@bufbuild/protobuf";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { ListAgentsResponseSchema } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { VerifyAuditChainResponseSchema } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { AgentState, AgentStateSchema } from "../gen/agentgateway/v1/common_pb.js";
import { CliError } from "./errors.js";
import { enumChoices, enumName, type Format, type Io, Output, parseEnum, parseFormat } from "./output.js";

function io(options: { tty?: boolean; columns?: number; env?: NodeJS.ProcessEnv } = {}): Io & { text(): string } {
  let text = "";
  const stdout = {
    write: (s: string) => {
      text += s;
      return true;
    },
    isTTY: options.tty ?? false,
    columns: options.columns ?? 0,
  };
  return { stdout, stderr: { write: () => true }, stdin: new PassThrough(), env: options.env ?? {}, text: () => text };
}

const agents = create(ListAgentsResponseSchema, { agents: [{ id: "a1", name: "web-1", state: AgentState.ACTIVE }], nextPageToken: "" });

describe("formats", () => {
  it("prints canonical protobuf JSON with every field, so scripts can rely on keys", () => {
    const out = io();
    new Output(out, "json", false).result(VerifyAuditChainResponseSchema, create(VerifyAuditChainResponseSchema, { ok: false, checked: 12n, firstBadSeq: 3n }));
    expect(JSON.parse(out.text())).toEqual({ ok: false, checked: "12", firstBadSeq: "3", message: "" });
  });

  it("prints the same value as YAML", () => {
    const json = io();
    const yaml = io();
    new Output(json, "json", false).result(ListAgentsResponseSchema, agents);
    new Output(yaml, "yaml", false).result(ListAgentsResponseSchema, agents);
    expect(parseYaml(yaml.text())).toEqual(JSON.parse(json.text()));
    expect((JSON.parse(json.text()) as { agents: Array<{ state: string }> }).agents[0]?.state).toBe("AGENT_STATE_ACTIVE");
  });

  it("prints one compact JSON object per line for streams", () => {
    const out = io();
    const output = new Output(out, "json", false);
    output.item(ListAgentsResponseSchema, agents);
    output.item(ListAgentsResponseSchema, agents);
    const lines = out.text().trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ agents: [{ id: "a1" }] });
  });

  it("prints only IDs with --quiet, and the text otherwise", () => {
    const quiet = io();
    new Output(quiet, "table", true).result(ListAgentsResponseSchema, agents, { text: () => "TABLE", ids: () => ["a1", "a2"] });
    expect(quiet.text()).toBe("a1\na2\n");
    const table = io();
    new Output(table, "table", false).result(ListAgentsResponseSchema, agents, { text: () => "TABLE", ids: () => ["a1"] });
    expect(table.text()).toBe("TABLE\n");
  });

  it("checks --format", () => {
    expect(parseFormat("yaml")).toBe("yaml" satisfies Format);
    expect(() => parseFormat("xml")).toThrow(CliError);
  });
});

describe("colour and width", () => {
  it("colours only a terminal, never with NO_COLOR or TERM=dumb", () => {
    expect(new Output(io({ tty: true }), "table", false).colour).toBe(true);
    expect(new Output(io({ tty: false }), "table", false).colour).toBe(false);
    expect(new Output(io({ tty: true, env: { NO_COLOR: "" } }), "table", false).colour).toBe(false);
    expect(new Output(io({ tty: true, env: { TERM: "dumb" } }), "table", false).colour).toBe(false);
  });

  it("fits tables to the terminal's width, and not at all when piped (unless COLUMNS says so)", () => {
    expect(new Output(io({ tty: true, columns: 120 }), "table", false).width).toBe(120);
    expect(new Output(io({ tty: false, columns: 120 }), "table", false).width).toBeUndefined();
    expect(new Output(io({ tty: false, env: { COLUMNS: "90" } }), "table", false).width).toBe(90);
  });
});

describe("enum flags and names", () => {
  it("use the proto's value names without their prefix", () => {
    expect(enumName(AgentStateSchema, AgentState.PENDING_APPROVAL)).toBe("PENDING_APPROVAL");
    expect(enumChoices(AgentStateSchema)).toEqual(["pending-approval", "active", "rejected", "revoked", "retired"]);
    expect(parseEnum(AgentStateSchema, "--state", "pending-approval")).toBe(AgentState.PENDING_APPROVAL);
    expect(parseEnum(AgentStateSchema, "--state", "AGENT_STATE_ACTIVE")).toBe(AgentState.ACTIVE);
    expect(parseEnum(AgentStateSchema, "--state", "pending", { pending: "PENDING_APPROVAL" })).toBe(AgentState.PENDING_APPROVAL);
    expect(() => parseEnum(AgentStateSchema, "--state", "unspecified")).toThrow(/--state must be one of pending-approval, active/);
  });
});
