import { type RawBuilder, sql } from "kysely";
import type { CommandsWithdrawn } from "../bus/bus.js";
import { deleteBatchBefore } from "../db/batch-delete.js";
import type { Executor } from "../db/database.js";
import type { AckStatusName } from "../db/schema.js";
import { metrics } from "../observability/metrics.js";

/** A persisted command, as read for delivery. */
export interface StoredCommand {
  agentId: string;
  sequence: number;
  commandId: string;
  /** Absent for a tenant-wide notice (`shared`): the same body for every agent, fetched once. */
  body: Uint8Array | undefined;
  createdAt: Date;
  /** A tenant-wide notice (one row for the whole tenant), not a command of this agent alone. */
  shared: boolean;
  /** What it is ("rollout", "peer_revoked") and what it belongs to (a rollout id): what a withdrawal names. */
  kind: string;
  ref: string | null;
}

/**
 * Queues a tenant-wide notice (a peer revocation) as ONE row, whatever the size of the fleet:
 * every agent of the tenant but `exceptAgentId` that existed when it was queued receives it on
 * its stream (now, or when it next connects) until it acknowledges it. Returns its sequence.
 */
export async function enqueueForTenant(
  db: Executor,
  input: { tenantId: string; exceptAgentId?: string; kind: string; ref?: string; body: Uint8Array },
): Promise<number> {
  const result = await sql<{ sequence: string }>`
    with seq as (${nextSequence(input.tenantId)})
    insert into tenant_commands (tenant_id, sequence, command_id, kind, ref, except_agent_id, body)
    select ${input.tenantId}, seq.last_sequence, gen_random_uuid(), ${input.kind}, ${input.ref ?? null}, ${input.exceptAgentId ?? null}, ${input.body}::bytea from seq
    returning sequence`.execute(db);
  // One notice is one queued command, however many agents it reaches.
  metrics.commandsQueued.add(1, { kind: input.kind });
  return Number(result.rows[0]?.sequence ?? 0);
}

/**
 * Queues the same command for a list of agents of a tenant in one statement (one row per agent,
 * all with the same sequence); returns how many got it.
 */
export async function enqueueForAgents(db: Executor, input: { tenantId: string; agentIds: string[]; kind: string; ref: string; body: Uint8Array }): Promise<number> {
  if (input.agentIds.length === 0) return 0;
  const result = await sql`
    with seq as (${nextSequence(input.tenantId)})
    insert into agent_commands (agent_id, sequence, tenant_id, command_id, kind, ref, body)
    select a.id, seq.last_sequence, a.tenant_id, gen_random_uuid(), ${input.kind}, ${input.ref}, ${input.body}::bytea
    from agents a, seq
    where a.tenant_id = ${input.tenantId} and a.id = any(${input.agentIds}::uuid[])`.execute(db);
  const queued = Number(result.numAffectedRows ?? 0);
  metrics.commandsQueued.add(queued, { kind: input.kind });
  return queued;
}

/**
 * The tenant's next command sequence, taken under the counter row's lock (held until commit):
 * commands of one tenant commit in sequence order, so a stream that was sent sequence 11 can
 * never miss a 10 that commits later.
 */
function nextSequence(tenantId: string): RawBuilder<unknown> {
  return sql`
    insert into command_counters (tenant_id, last_sequence) values (${tenantId}, 1)
    on conflict (tenant_id) do update set last_sequence = command_counters.last_sequence + 1
    returning last_sequence`;
}

/**
 * Unacknowledged commands after each agent's cursor, in sequence order, for many agents in one
 * round trip (a broadcast to thousands of local streams costs one query per chunk): the agent's
 * own commands and the tenant-wide notices meant for it. A notice comes without its body
 * (`shared`): it is the same for every agent, so callers fetch it once (tenantCommandBodies).
 */
export async function pendingCommands(db: Executor, cursors: Array<{ agentId: string; after: number }>, limitPerAgent = 100): Promise<StoredCommand[]> {
  if (cursors.length === 0) return [];
  const ids = cursors.map((c) => c.agentId);
  const afters = cursors.map((c) => String(c.after));
  const result = await sql<{ agent_id: string; sequence: string; command_id: string; body: Uint8Array | null; created_at: Date; shared: boolean; kind: string; ref: string | null }>`
    select t.agent_id, c.sequence, c.command_id, c.body, c.created_at, c.shared, c.kind, c.ref
    from unnest(${ids}::uuid[], ${afters}::bigint[]) as t(agent_id, after)
    join agents a on a.id = t.agent_id
    cross join lateral (
      (select sequence, command_id, body, created_at, false as shared, kind, ref from agent_commands
       where agent_id = t.agent_id and sequence > t.after and acked_at is null
       order by sequence limit ${limitPerAgent})
      union all
      (select n.sequence, n.command_id, null::bytea, n.created_at, true, n.kind, n.ref from tenant_commands n
       where n.tenant_id = a.tenant_id and n.sequence > t.after and n.created_at >= a.created_at
         and n.except_agent_id is distinct from t.agent_id
         and not exists (select 1 from tenant_command_acks k where k.agent_id = t.agent_id and k.sequence = n.sequence)
       order by n.sequence limit ${limitPerAgent})
      order by sequence limit ${limitPerAgent}
    ) c
    order by t.agent_id, c.sequence`.execute(db);
  return result.rows.map((r) => ({
    agentId: r.agent_id,
    sequence: Number(r.sequence),
    commandId: r.command_id,
    body: r.body ? new Uint8Array(r.body) : undefined,
    createdAt: r.created_at,
    shared: r.shared,
    kind: r.kind,
    ref: r.ref,
  }));
}

/** The bodies of tenant-wide notices, by command id. */
export async function tenantCommandBodies(db: Executor, commandIds: string[]): Promise<Map<string, Uint8Array>> {
  if (commandIds.length === 0) return new Map();
  const rows = await db.selectFrom("tenant_commands").select(["command_id", "body"]).where("command_id", "in", commandIds).execute();
  return new Map(rows.map((r) => [r.command_id, new Uint8Array(r.body)]));
}

/** One acknowledgement from an agent. */
export interface Ack {
  agentId: string;
  tenantId: string;
  sequence: number;
  status: AckStatusName;
  reason: string;
}

/**
 * Records many acknowledgements in one statement, of the agents' own commands and of
 * tenant-wide notices alike (a sequence is one or the other); an ack of an acked command
 * changes nothing.
 */
export async function recordAcks(db: Executor, acks: Ack[]): Promise<void> {
  if (acks.length === 0) return;
  await sql`
    with a as (
      select * from unnest(${acks.map((a) => a.agentId)}::uuid[], ${acks.map((a) => a.tenantId)}::uuid[], ${acks.map((a) => String(a.sequence))}::bigint[],
                           ${acks.map((a) => a.status)}::text[], ${acks.map((a) => a.reason)}::text[]) as a(agent_id, tenant_id, sequence, status, reason)
    ), own as (
      update agent_commands c set acked_at = now(), ack_status = a.status, ack_reason = a.reason
      from a where c.agent_id = a.agent_id and c.sequence = a.sequence and c.acked_at is null
    )
    insert into tenant_command_acks (agent_id, sequence, tenant_id, ack_status, ack_reason)
    select distinct on (a.agent_id, a.sequence) a.agent_id, a.sequence, a.tenant_id, a.status, a.reason
    from a join tenant_commands n on n.tenant_id = a.tenant_id and n.sequence = a.sequence
    on conflict do nothing`.execute(db);
}

/**
 * Each agent's hello says it applied everything up to its sequence (one statement for many
 * agents: stream openings are batched): its own commands up to there
 * count as acknowledged (OK), so a reconnect never redelivers them. Tenant-wide notices up to
 * there are not sent on this stream either (delivery starts after the hello's sequence); they
 * count as acknowledged once acked.
 */
export async function ackThrough(db: Executor, applied: ReadonlyMap<string, number>): Promise<void> {
  const entries = [...applied].filter(([, sequence]) => sequence > 0);
  if (entries.length === 0) return;
  await sql`
    update agent_commands c set acked_at = now(), ack_status = 'OK', ack_reason = 'applied (reported in hello)'
    from unnest(${entries.map(([agentId]) => agentId)}::uuid[], ${entries.map(([, sequence]) => String(sequence))}::bigint[]) as h(agent_id, sequence)
    where c.agent_id = h.agent_id and c.sequence <= h.sequence and c.acked_at is null`.execute(db);
}

/** What withdrawUnacked took back: whose commands, and the notice every replica is told after commit (none when nothing was withdrawn). */
export interface Withdrawal {
  agentIds: string[];
  notice: CommandsWithdrawn | undefined;
}

/**
 * Withdraws commands of this kind and ref that their agent has not acknowledged yet (directives
 * of a halted or cancelled rollout), only those of `agentIds` when given: they are recorded as
 * WITHDRAWN with the reason, and are no longer delivered. A command already written to a stream
 * is not unsent; the agent's later ack of it changes nothing.
 */
export async function withdrawUnacked(db: Executor, input: { tenantId: string; kind: string; ref: string; reason: string; agentIds?: string[] }): Promise<Withdrawal> {
  if (input.agentIds?.length === 0) return { agentIds: [], notice: undefined };
  let query = db
    .updateTable("agent_commands")
    .set({ acked_at: new Date(), ack_status: "WITHDRAWN", ack_reason: input.reason })
    .where("tenant_id", "=", input.tenantId)
    .where("kind", "=", input.kind)
    .where("ref", "=", input.ref)
    .where("acked_at", "is", null);
  if (input.agentIds) query = query.where("agent_id", "=", sql<string>`any(${input.agentIds}::uuid[])`);
  const rows = await query.returning(["agent_id", "sequence"]).execute();
  const throughSequence = rows.reduce((max, r) => Math.max(max, Number(r.sequence)), 0);
  return {
    agentIds: [...new Set(rows.map((r) => r.agent_id))],
    notice: throughSequence > 0 ? { tenantId: input.tenantId, kind: input.kind, ref: input.ref, throughSequence } : undefined,
  };
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
 * (sequences come from command_counters), so deleting them changes no delivery.
 */
export async function deleteAckedBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "agent_commands", column: "acked_at" }, before, limit);
}

/** A persisted command with its acknowledgement, as operators read it. */
export interface CommandRecord {
  agentId: string;
  sequence: number;
  commandId: string;
  body: Uint8Array;
  createdAt: Date;
  /** A tenant-wide notice this agent receives (one row for the tenant), not a command of its own. */
  shared: boolean;
  kind: string;
  ref: string | null;
  ackedAt: Date | null;
  ackStatus: AckStatusName | null;
  ackReason: string | null;
}

/**
 * One agent's commands, newest first (by sequence), `limit` of them from before `beforeSequence`;
 * with `pendingOnly` only the unacknowledged ones. Its own commands and the tenant-wide notices
 * it receives (the same rule as delivery in pendingCommands), each with this agent's ack. An
 * admin read, separate from delivery.
 */
export async function listAgentCommands(
  db: Executor,
  query: { tenantId: string; agentId: string; pendingOnly: boolean; beforeSequence?: number; limit: number },
): Promise<CommandRecord[]> {
  const before = query.beforeSequence === undefined ? null : String(query.beforeSequence);
  const result = await sql<{
    sequence: string;
    command_id: string;
    kind: string;
    ref: string | null;
    body: Uint8Array;
    created_at: Date;
    shared: boolean;
    acked_at: Date | null;
    ack_status: AckStatusName | null;
    ack_reason: string | null;
  }>`
    select * from (
      (select c.sequence, c.command_id, c.kind, c.ref, c.body, c.created_at, false as shared, c.acked_at, c.ack_status, c.ack_reason
       from agent_commands c
       where c.tenant_id = ${query.tenantId} and c.agent_id = ${query.agentId}
         and (${before}::bigint is null or c.sequence < ${before}::bigint)
         and (not ${query.pendingOnly} or c.acked_at is null)
       order by c.sequence desc limit ${query.limit})
      union all
      (select n.sequence, n.command_id, n.kind, n.ref, n.body, n.created_at, true, k.acked_at, k.ack_status, k.ack_reason
       from agents a
       join tenant_commands n on n.tenant_id = a.tenant_id and n.created_at >= a.created_at and n.except_agent_id is distinct from a.id
       left join tenant_command_acks k on k.agent_id = a.id and k.sequence = n.sequence
       where a.tenant_id = ${query.tenantId} and a.id = ${query.agentId}
         and (${before}::bigint is null or n.sequence < ${before}::bigint)
         and (not ${query.pendingOnly} or k.acked_at is null)
       order by n.sequence desc limit ${query.limit})
    ) both_kinds
    order by sequence desc limit ${query.limit}`.execute(db);
  return result.rows.map((r) => ({
    agentId: query.agentId,
    sequence: Number(r.sequence),
    commandId: r.command_id,
    kind: r.kind,
    ref: r.ref,
    body: new Uint8Array(r.body),
    createdAt: r.created_at,
    shared: r.shared,
    ackedAt: r.acked_at,
    ackStatus: r.ack_status,
    ackReason: r.ack_reason,
  }));
}
