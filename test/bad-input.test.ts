// Every RPC of every service, driven with generated bad messages built from the descriptors
// (issue 11 item 1): none may be answered Internal or Unknown, a NUL anywhere is refused with
// InvalidArgument naming the field, and the gateway keeps recording everyone else's heartbeats.
// A new RPC or field is covered without touching this file.
import { create, type DescField, type DescMessage, type DescMethod, type DescService, ScalarType } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AgentGatewayService } from "../gen/agentgateway/v1/gateway_pb.js";
import { gatewayClient, withSession } from "../agent/lib/direct.js";
import { SERVED_FILES } from "../server/app/routes.js";
import { declaredAccess } from "../server/identity/access-policy.js";
import { enrollAgent, type EnrolledAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

/** Every service the gateway serves, from the same list routes.ts registers. */
const SERVICES: DescService[] = SERVED_FILES.flatMap((file) => file.services);

let gw: TestGateway;
let agent: EnrolledAgent;
let bystander: EnrolledAgent;

beforeAll(async () => {
  gw = await startTestGateway({ heartbeatFlushInterval: "100ms" });
  agent = await enrollAgent(gw, "fuzzed");
  bystander = await enrollAgent(gw, "bystander");
});

afterAll(async () => {
  await gw?.stop();
});

/** Real ids for fields named like them, so mutated requests get past "not found" to the database. */
function seedFor(service: DescService, field: DescField): unknown {
  if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.STRING) return undefined;
  if (field.name === "agent_id" || (field.name === "id" && (service === AgentService || service === AgentGatewayService))) return agent.registration.agentId;
  return undefined;
}

/** Bad values for one field: what PostgreSQL cannot store and what no column range holds. */
function badValues(field: DescField): unknown[] {
  const kind = field.fieldKind === "list" ? field.listKind : field.fieldKind === "map" ? field.mapKind : field.fieldKind;
  if (kind === "enum") return [999, -1];
  if (kind === "message") return [];
  const scalar = field.scalar as ScalarType;
  switch (scalar) {
    case ScalarType.STRING:
      return ["\u0000", "ok\u0000ok", "x".repeat(10_000)];
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return [2 ** 31, 2 ** 32 - 1];
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return [-1, -(2 ** 31), 2 ** 31 - 1];
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return [2n ** 63n, 2n ** 64n - 1n];
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return [-(2n ** 63n), 2n ** 63n - 1n, -1n];
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return [Number.NaN, Number.POSITIVE_INFINITY, -1e308];
    case ScalarType.BYTES:
      return [new Uint8Array(0), new Uint8Array(100_000).fill(0xff)];
    default:
      return [true];
  }
}

interface Case {
  label: string;
  message: unknown;
  nul: boolean;
}

/** The request with seeds, then one case per (field path, bad value), nested messages to depth 2. */
function casesFor(service: DescService, schema: DescMessage): Case[] {
  const cases: Case[] = [];
  const base = (): ReflectMessage => {
    const r = reflect(schema, create(schema));
    for (const f of r.fields) {
      const seed = seedFor(service, f);
      if (seed !== undefined) r.set(f, seed);
    }
    return r;
  };
  const visit = (fields: readonly DescField[], path: DescField[], depth: number): void => {
    for (const field of fields) {
      const at = [...path, field];
      for (const value of badValues(field)) {
        const r = base();
        setAt(r, at, value);
        cases.push({ label: `${at.map((f) => f.name).join(".")}=${show(value)}`, message: r.message, nul: typeof value === "string" && value.includes("\u0000") });
      }
      const nested = field.fieldKind === "message" ? field.message : field.fieldKind === "list" && field.listKind === "message" ? field.message : undefined;
      if (nested && depth < 2 && !nested.typeName.startsWith("google.protobuf.")) visit(nested.fields, at, depth + 1);
      if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Timestamp") {
        for (const seconds of [-100_000_000_000n, 300_000_000_000n]) {
          const r = base();
          setAt(r, at, reflect(field.message, create(field.message, { seconds } as never)));
          cases.push({ label: `${at.map((f) => f.name).join(".")}.seconds=${seconds}`, message: r.message, nul: false });
        }
      }
    }
  };
  visit(schema.fields, [], 0);
  return cases;
}

/** Sets a value at a field path, creating the messages, list elements and map entries on the way. */
function setAt(root: ReflectMessage, path: DescField[], value: unknown): void {
  let msg = root;
  for (const [i, field] of path.entries()) {
    const last = i === path.length - 1;
    if (field.fieldKind === "list") {
      const list = msg.get(field);
      if (last) {
        list.add(value as never);
        return;
      }
      const element = reflect(field.message as DescMessage);
      list.add(element as never);
      msg = element;
    } else if (field.fieldKind === "map") {
      if (last) msg.get(field).set("k", value as never);
      return;
    } else if (field.fieldKind === "message") {
      if (last) {
        msg.set(field, value as never);
        return;
      }
      const child = reflect(field.message);
      msg.set(field, child as never);
      msg = msg.get(field) as ReflectMessage;
    } else {
      msg.set(field, value as never);
      return;
    }
  }
}

function show(value: unknown): string {
  if (typeof value === "string") return value.length > 20 ? `"x"×${value.length}` : JSON.stringify(value);
  if (value instanceof Uint8Array) return `bytes×${value.length}`;
  return String(value);
}

/** Calls one method with one message; returns the Connect code (OK when it succeeded) and the message. */
async function call(service: DescService, method: DescMethod, message: unknown): Promise<{ code: Code | "OK"; text: string }> {
  // Agent RPCs carry the agent's session; admin RPCs go through the shared admin client, with
  // the system key for the provider's RPCs.
  const agentRpc = service === AgentGatewayService;
  const headers = agentRpc ? withSession(agent.session).headers : {};
  const key = declaredAccess(method).caller === "system" ? gw.systemKey : gw.adminKey;
  const client = (agentRpc ? createClient(service, gw.transport) : gw.admin(service, key)) as unknown as Record<string, (...args: unknown[]) => unknown>;
  const fn = client[method.localName] as (...args: unknown[]) => unknown;
  const signal = AbortSignal.timeout(2_000);
  try {
    if (method.methodKind === "unary") {
      await fn(message, { headers, signal });
    } else if (method.methodKind === "server_streaming") {
      for await (const _ of fn(message, { headers, signal }) as AsyncIterable<unknown>) break;
    } else {
      const input = (async function* () {
        yield message;
        // Keep the request side open, as an agent does, until the answer is in.
        await new Promise((resolve) => signal.addEventListener("abort", resolve));
      })();
      const out = fn(input, { headers, signal });
      if (method.methodKind === "client_streaming") await out;
      else for await (const _ of out as AsyncIterable<unknown>) break;
    }
    return { code: "OK", text: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, text: e.rawMessage };
  }
}

describe("generated bad messages on every RPC", () => {
  for (const service of SERVICES) {
    for (const method of service.methods) {
      it(`${service.name}.${method.name}`, async () => {
        const cases = casesFor(service, method.input);
        const failures: string[] = [];
        for (const c of cases) {
          const { code, text } = await call(service, method, c.message);
          if (code === Code.Internal || code === Code.Unknown) failures.push(`${c.label}: ${Code[code]} ${text}`);
          if (c.nul && code !== Code.InvalidArgument) failures.push(`${c.label}: expected InvalidArgument, got ${code === "OK" ? "OK" : Code[code]} ${text}`);
          if (c.nul && code === Code.InvalidArgument && !text.includes(c.label.split("=")[0]!.split(".").at(-1)!)) {
            failures.push(`${c.label}: InvalidArgument does not name the field: ${text}`);
          }
        }
        expect(failures).toEqual([]);
      }, 60_000);
    }
  }

  it("leaves every other agent's heartbeats recorded, and the gateway healthy", async () => {
    const client = gatewayClient(gw.transport);
    const before = await lastSeen(bystander.registration.agentId);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await client.uploadHeartbeat({ agentVersion: "1.2.3" }, withSession(bystander.session));
    await expect.poll(() => lastSeen(bystander.registration.agentId), { timeout: 5_000 }).not.toBe(before);
    const me = await gw.admin(ApiKeyService).whoAmI({});
    expect(me.tenantId).not.toBe("");
  });
});

describe("a bad row that slips past the edge", () => {
  it("is dropped alone by the heartbeat flush on real PostgreSQL; every other agent's heartbeat is written", async () => {
    const heartbeats = gw.gateway.context.heartbeats;
    const rejectedBefore = heartbeats.stats.rejected;
    const before = await lastSeen(bystander.registration.agentId);
    // Straight into the coalescer, as if a future field had no edge check.
    heartbeats.record(agent.registration.agentId, { tenantId: agent.registration.tenantId, seenAt: new Date(), agentVersion: "poison\u0000", host: undefined });
    await gatewayClient(gw.transport).uploadHeartbeat({ agentVersion: "1.2.4" }, withSession(bystander.session));
    await expect.poll(() => lastSeen(bystander.registration.agentId), { timeout: 5_000 }).not.toBe(before);
    await expect.poll(() => heartbeats.stats.rejected, { timeout: 5_000 }).toBe(rejectedBefore + 1);
  });
});

async function lastSeen(agentId: string): Promise<number | undefined> {
  const row = await gw.gateway.context.database.db.selectFrom("agents").select("last_seen_at").where("id", "=", agentId).executeTakeFirst();
  return row?.last_seen_at?.getTime();
}

