import { type RawBuilder, sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { AckStatusName } from "../db/schema.js";
import { metrics } from "../observability/metrics.js";

/** A persisted command, as read for delivery. */
export interface StoredCommand {
  agentId: string;
  sequence: number;
  commandId: string;
  body: Uint8Array;
  createdAt: Date;
}

/**
 * Queues the same command for every ACTIVE agent of a tenant (but `exceptAgentId`) in one
 * statement, however large the fleet. Returns how many agents got it.
 */
export async function enqueueForTenant(
  db: Executor,
  input: { tenantId: string; exceptAgentId?: string; kind: string; ref?: string; body: Uint8Array },
): Promise<number> {
  const except = input.exceptAgentId ?? "00000000-0000-0000-0000-000000000000";
  return enqueueWhere(db, sql`state = 'ACTIVE' and id <> ${except}`, input);
}

/** Queues the same command for a list of agents of a tenant in one statement; returns how many got it. */
export async function enqueueForAgents(db: Executor, input: { tenantId: string; agentIds: string[]; kind: string; ref: string; body: Uint8Array }): Promise<number> {
  if (input.agentIds.length === 0) return 0;
  return enqueueWhere(db, sql`id = any(${input.agentIds}::uuid[])`, input);
}

/**
 * The one broadcast statement: bump each target agent's sequence counter (under its row lock)
 * and insert the command with that sequence, for every agent of the tenant matching `targets`.
 */
async function enqueueWhere(db: Executor, targets: RawBuilder<unknown>, input: { tenantId: string; kind: string; ref?: string; body: Uint8Array }): Promise<number> {
  const result = await sql`
    with targets as (
      update agents set command_seq = command_seq + 1
      where tenant_id = ${input.tenantId} and ${targets}
      returning id, tenant_id, command_seq
    )
    insert into agent_commands (agent_id, sequence, tenant_id, command_id, kind, ref, body)
    select id, command_seq, tenant_id, gen_random_uuid(), ${input.kind}, ${input.ref ?? null}, ${input.body}::bytea from targets`.execute(db);
  const queued = Number(result.numAffectedRows ?? 0);
  metrics.commandsQueued.add(queued, { kind: input.kind });
  return queued;
}

/**
 * Unacknowledged commands after each agent's cursor, in sequence order, for many agents in one
 * round trip (a broadcast to thousands of local streams costs one query per chunk).
 */
export async function pendingCommands(db: Executor, cursors: Array<{ agentId: string; after: number }>, limitPerAgent = 100): Promise<StoredCommand[]> {
  if (cursors.length === 0) return [];
  const ids = cursors.map((c) => c.agentId);
  const afters = cursors.map((c) => String(c.after));
  const result = await sql<{ agent_id: string; sequence: string; command_id: string; body: Uint8Array; created_at: Date }>`
    select c.agent_id, c.sequence, c.command_id, c.body, c.created_at
    from unnest(${ids}::uuid[], ${afters}::bigint[]) as t(agent_id, after)
    cross join lateral (
      select agent_id, sequence, command_id, body, created_at from agent_commands
      where agent_id = t.agent_id and sequence > t.after and acked_at is null
      order by sequence limit ${limitPerAgent}
    ) c
    order by c.agent_id, c.sequence`.execute(db);
  return result.rows.map((r) => ({
    agentId: r.agent_id,
    sequence: Number(r.sequence),
    commandId: r.command_id,
    body: new Uint8Array(r.body),
    createdAt: r.created_at,
  }));
}

/** One acknowledgement from an agent. */
export interface Ack {
  agentId: string;
  sequence: number;
  status: AckStatusName;
  reason: string;
}

/** Records many acknowledgements in one statement; an ack of an acked command changes nothing. */
export async function recordAcks(db: Executor, acks: Ack[]): Promise<void> {
  if (acks.length === 0) return;
  await sql`
    update agent_commands c set acked_at = now(), ack_status = a.status, ack_reason = a.reason
    from unnest(${acks.map((a) => a.agentId)}::uuid[], ${acks.map((a) => String(a.sequence))}::bigint[],
                ${acks.map((a) => a.status)}::text[], ${acks.map((a) => a.reason)}::text[]) as a(agent_id, sequence, status, reason)
    where c.agent_id = a.agent_id and c.sequence = a.sequence and c.acked_at is null`.execute(db);
}

/**
 * The agent's hello says it applied everything up to `sequence`: those commands count as
 * acknowledged (OK), so a reconnect never redelivers them.
 */
export async function ackThrough(db: Executor, agentId: string, sequence: number): Promise<void> {
  if (sequence <= 0) return;
  await db
    .updateTable("agent_commands")
    .set({ acked_at: new Date(), ack_status: "OK", ack_reason: "applied (reported in hello)" })
    .where("agent_id", "=", agentId)
    .where("sequence", "<=", sequence)
    .where("acked_at", "is", null)
    .execute();
}

/** Withdraws commands that no agent has acknowledged yet (e.g. directives of a cancelled rollout). */
export async function withdrawUnacked(db: Executor, input: { tenantId: string; kind: string; ref: string; reason: string }): Promise<void> {
  await db
    .updateTable("agent_commands")
    .set({ acked_at: new Date(), ack_status: "FAILED", ack_reason: input.reason })
    .where("tenant_id", "=", input.tenantId)
    .where("kind", "=", input.kind)
    .where("ref", "=", input.ref)
    .where("acked_at", "is", null)
    .execute();
}

/**
 * Seconds since the oldest command still unacknowledged by an ACTIVE agent seen since `since`
 * was queued (0 when there is none). Agents that are offline are left out: their commands wait
 * by design, and would make the age grow without telling anything.
 */
export async function oldestUnackedAgeSeconds(db: Executor, since: Date): Promise<number> {
  const { rows } = await sql<{ age: string | null }>`
    select extract(epoch from now() - min(c.created_at)) as age
    from agent_commands c join agents a on a.id = c.agent_id
    where c.acked_at is null and a.state = 'ACTIVE' and a.last_seen_at > ${since}`.execute(db);
  return Math.max(0, Number(rows[0]?.age ?? 0));
}

/**
 * Deletes at most `limit` commands acknowledged before `before` (retention); returns how many.
 * Unacknowledged commands are never deleted: they wait for their agent. Nothing reads acked rows
 * (sequences come from agents.command_seq), so deleting them changes no delivery.
 */
export async function deleteAckedBefore(db: Executor, before: Date, limit: number): Promise<number> {
  const result = await sql`
    delete from agent_commands
    where ctid = any(array(select ctid from agent_commands where acked_at < ${before} limit ${limit}))
      and acked_at < ${before}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** A persisted command with its acknowledgement, as operators read it. */
export interface CommandRecord extends StoredCommand {
  kind: string;
  ref: string | null;
  ackedAt: Date | null;
  ackStatus: AckStatusName | null;
  ackReason: string | null;
}

/**
 * One agent's commands, newest first (by sequence), `limit` of them from before `beforeSequence`;
 * with `pendingOnly` only the unacknowledged ones. An admin read, separate from delivery.
 */
export async function listAgentCommands(
  db: Executor,
  query: { tenantId: string; agentId: string; pendingOnly: boolean; beforeSequence?: number; limit: number },
): Promise<CommandRecord[]> {
  let q = db
    .selectFrom("agent_commands")
    .select(["agent_id", "sequence", "command_id", "kind", "ref", "body", "created_at", "acked_at", "ack_status", "ack_reason"])
    .where("tenant_id", "=", query.tenantId)
    .where("agent_id", "=", query.agentId);
  if (query.pendingOnly) q = q.where("acked_at", "is", null);
  if (query.beforeSequence !== undefined) q = q.where("sequence", "<", query.beforeSequence);
  const rows = await q.orderBy("sequence", "desc").limit(query.limit).execute();
  return rows.map((r) => ({
    agentId: r.agent_id,
    sequence: Number(r.sequence),
    commandId: r.command_id,
    kind: r.kind,
    ref: r.ref,
    body: new Uint8Array(r.body),
    createdAt: r.created_at,
    ackedAt: r.acked_at,
    ackStatus: r.ack_status,
    ackReason: r.ack_reason,
  }));
}
