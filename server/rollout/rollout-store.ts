import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { MemberStateName, RolloutStateName, WaveStateName } from "../db/schema.js";

// Owner of rollouts, rollout_waves and rollout_members. Services pass an open transaction when
// several of these must change together; nothing here decides what may change.

/** A rollout as the services see it. */
export interface RolloutRecord {
  id: string;
  tenantId: string;
  targetVersion: string;
  /** The serialized SignedReleaseManifest, as the operator sent it. */
  signedManifest: Uint8Array;
  state: RolloutStateName;
  currentWave: number;
  haltReason: string | null;
  resumeNotes: string[];
  autoAdvanceAfterMs: number;
  createdAt: Date;
  updatedAt: Date;
}

/** One wave of a rollout. */
export interface WaveRecord {
  index: number;
  name: string;
  state: WaveStateName;
  failureBudget: number;
  acceptedFailures: number;
  verifyWindowMs: number;
  startedAt: Date | null;
  verifyDeadline: Date | null;
  completedAt: Date | null;
}

/** One agent's place in a rollout. */
export interface MemberRecord {
  agentId: string;
  wave: number;
  state: MemberStateName;
  reason: string;
  straggler: boolean;
}

/** Member states that still wait for an outcome. */
export const OPEN_MEMBER_STATES = ["PENDING", "DIRECTED", "APPLYING"] as const satisfies readonly MemberStateName[];
/** Open members whose directive is out (not PENDING: never sent, or withdrawn by a halt). */
const DIRECTED_MEMBER_STATES = ["DIRECTED", "APPLYING"] as const satisfies readonly MemberStateName[];

/** Stores a PLANNED rollout with its waves and its membership (in chunks, so a big fleet stays under the parameter limit). */
export async function insertRollout(
  trx: Executor,
  input: {
    id: string; tenantId: string; targetVersion: string; signedManifest: Uint8Array; releaseKeyId: string; autoAdvanceAfterMs: number;
    targetSelector: Record<string, string>; createdBy: string;
    waves: Array<{ name: string; failureBudget: number; verifyWindowMs: number; members: string[] }>;
  },
): Promise<void> {
  await trx
    .insertInto("rollouts")
    .values({
      id: input.id,
      tenant_id: input.tenantId,
      target_version: input.targetVersion,
      signed_manifest: input.signedManifest,
      release_key_id: input.releaseKeyId,
      state: "PLANNED",
      auto_advance_after_ms: input.autoAdvanceAfterMs,
      target_selector: JSON.stringify(input.targetSelector),
      created_by: input.createdBy,
    })
    .execute();
  await trx
    .insertInto("rollout_waves")
    .values(input.waves.map((w, index) => ({ rollout_id: input.id, index, name: w.name, state: "PENDING" as const, failure_budget: w.failureBudget, verify_window_ms: w.verifyWindowMs })))
    .execute();
  const members = input.waves.flatMap((w, wave) => w.members.map((agentId) => ({ rollout_id: input.id, agent_id: agentId, tenant_id: input.tenantId, wave, state: "PENDING" as const })));
  for (let i = 0; i < members.length; i += 1000) await trx.insertInto("rollout_members").values(members.slice(i, i + 1000)).execute();
}

/** The tenant's rollout; with `forUpdate`, its row stays locked until the transaction ends. */
export async function getRollout(db: Executor, tenantId: string, id: string, forUpdate = false): Promise<RolloutRecord | undefined> {
  let query = db.selectFrom("rollouts").selectAll().where("tenant_id", "=", tenantId).where("id", "=", id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toRollout(row) : undefined;
}

/** The ids of every RUNNING or HALTED rollout, of all tenants, in id order (the verifier's work list). */
export async function listActiveRolloutIds(db: Executor): Promise<string[]> {
  const rows = await db.selectFrom("rollouts").select("id").where("state", "in", ["RUNNING", "HALTED"]).orderBy("id").execute();
  return rows.map((r) => r.id);
}

/** A rollout of any tenant, its row locked until the transaction ends (the verifier's side of the serialization). */
export async function lockRolloutById(trx: Executor, id: string): Promise<RolloutRecord | undefined> {
  const row = await trx.selectFrom("rollouts").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
  return row ? toRollout(row) : undefined;
}

/** A page of the tenant's rollouts (id and creation time), newest first, after a keyset position. */
export async function listRolloutIds(db: Executor, tenantId: string, page: { limit: number; after?: { createdAt: Date; id: string } }): Promise<{ id: string; createdAt: Date }[]> {
  let query = db.selectFrom("rollouts").select(["id", "created_at"]).where("tenant_id", "=", tenantId);
  if (page.after) {
    const { createdAt, id } = page.after;
    query = query.where((eb) => eb.or([eb("created_at", "<", createdAt), eb.and([eb("created_at", "=", createdAt), eb("id", "<", id)])]));
  }
  const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(page.limit).execute();
  return rows.map((r) => ({ id: r.id, createdAt: r.created_at }));
}

/** How many rollouts the tenant has, in any state (TenantService). */
export async function countTenantRollouts(db: Executor, tenantId: string): Promise<number> {
  const row = await db.selectFrom("rollouts").select((eb) => eb.fn.countAll<string>().as("n")).where("tenant_id", "=", tenantId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Changes a rollout and stamps updated_at; an empty patch only stamps it. */
export async function updateRollout(
  trx: Executor,
  id: string,
  patch: { state?: RolloutStateName; haltReason?: string | null; currentWave?: number; appendResumeNote?: string } = {},
): Promise<void> {
  await trx
    .updateTable("rollouts")
    .set({
      updated_at: new Date(),
      ...(patch.state !== undefined ? { state: patch.state } : {}),
      ...(patch.haltReason !== undefined ? { halt_reason: patch.haltReason } : {}),
      ...(patch.currentWave !== undefined ? { current_wave: patch.currentWave } : {}),
      ...(patch.appendResumeNote !== undefined ? { resume_notes: sql`resume_notes || ${JSON.stringify([patch.appendResumeNote])}::jsonb` } : {}),
    })
    .where("id", "=", id)
    .execute();
}

/** One wave of the rollout, or undefined past the last one. */
export async function getWave(db: Executor, rolloutId: string, index: number): Promise<WaveRecord | undefined> {
  const row = await db.selectFrom("rollout_waves").selectAll().where("rollout_id", "=", rolloutId).where("index", "=", index).executeTakeFirst();
  return row ? toWave(row) : undefined;
}

/** Every wave of the rollout, in order. */
export async function listWaves(db: Executor, rolloutId: string): Promise<WaveRecord[]> {
  const rows = await db.selectFrom("rollout_waves").selectAll().where("rollout_id", "=", rolloutId).orderBy("index").execute();
  return rows.map(toWave);
}

/** Changes a wave; keys left out stay as they are. */
export async function updateWave(
  trx: Executor,
  rolloutId: string,
  index: number,
  patch: { state?: WaveStateName; acceptedFailures?: number; startedAt?: Date; verifyDeadline?: Date; completedAt?: Date | null },
): Promise<void> {
  await trx
    .updateTable("rollout_waves")
    .set({
      ...(patch.state !== undefined ? { state: patch.state } : {}),
      ...(patch.acceptedFailures !== undefined ? { accepted_failures: patch.acceptedFailures } : {}),
      ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
      ...(patch.verifyDeadline !== undefined ? { verify_deadline: patch.verifyDeadline } : {}),
      ...(patch.completedAt !== undefined ? { completed_at: patch.completedAt } : {}),
    })
    .where("rollout_id", "=", rolloutId)
    .where("index", "=", index)
    .execute();
}

/** Every member of the rollout, ordered by agent id. */
export async function listMembers(db: Executor, rolloutId: string): Promise<MemberRecord[]> {
  const rows = await db.selectFrom("rollout_members").select(["agent_id", "wave", "state", "reason", "straggler"]).where("rollout_id", "=", rolloutId).orderBy("agent_id").execute();
  return rows.map((r) => ({ agentId: r.agent_id, wave: r.wave, state: r.state, reason: r.reason, straggler: r.straggler }));
}

/** The agent ids of a wave, optionally only those in one state. */
export async function waveMemberIds(db: Executor, rolloutId: string, wave: number, state?: MemberStateName): Promise<string[]> {
  let query = db.selectFrom("rollout_members").select("agent_id").where("rollout_id", "=", rolloutId).where("wave", "=", wave);
  if (state) query = query.where("state", "=", state);
  const rows = await query.execute();
  return rows.map((r) => r.agent_id);
}

/** Up to `limit` failed members of a wave with their reasons, by agent id (for a halt reason). */
export async function failedMembers(db: Executor, rolloutId: string, wave: number, limit: number): Promise<Array<{ agentId: string; reason: string }>> {
  const rows = await db
    .selectFrom("rollout_members")
    .select(["agent_id", "reason"])
    .where("rollout_id", "=", rolloutId)
    .where("wave", "=", wave)
    .where("state", "=", "FAILED")
    .orderBy("agent_id")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ agentId: r.agent_id, reason: r.reason }));
}

/** How many members of a wave are still open, failed and succeeded. */
export async function memberCounts(db: Executor, rolloutId: string, wave: number): Promise<{ open: number; failed: number; succeeded: number }> {
  const rows = await db
    .selectFrom("rollout_members")
    .select(["state", sql<number>`count(*)::int`.as("n")])
    .where("rollout_id", "=", rolloutId)
    .where("wave", "=", wave)
    .groupBy("state")
    .execute();
  const count = (states: readonly string[]) => rows.filter((r) => states.includes(r.state)).reduce((sum, r) => sum + Number(r.n), 0);
  return { open: count(OPEN_MEMBER_STATES), failed: count(["FAILED"]), succeeded: count(["SUCCEEDED"]) };
}

/** Marks every member of a wave DIRECTED (its directive is being queued). */
export async function directWaveMembers(trx: Executor, rolloutId: string, wave: number): Promise<void> {
  await trx.updateTable("rollout_members").set({ state: "DIRECTED", updated_at: new Date() }).where("rollout_id", "=", rolloutId).where("wave", "=", wave).execute();
}

/** Puts these members back to DIRECTED with their failure cleared (a retry). */
export async function redirectMembers(trx: Executor, rolloutId: string, agentIds: string[]): Promise<void> {
  await trx
    .updateTable("rollout_members")
    .set({ state: "DIRECTED", reason: "", straggler: false, updated_at: new Date() })
    .where("rollout_id", "=", rolloutId)
    .where("agent_id", "in", agentIds)
    .execute();
}

/**
 * Puts these members of the wave back to PENDING with a reason, those still DIRECTED (not yet
 * reported): their directive was withdrawn by a halt, so they neither count as failures nor
 * fail as stragglers; resume directs them again. Returns how many.
 */
export async function parkMembers(trx: Executor, input: { rolloutId: string; wave: number; agentIds: string[]; reason: string }): Promise<number> {
  if (input.agentIds.length === 0) return 0;
  const result = await trx
    .updateTable("rollout_members")
    .set({ state: "PENDING", reason: input.reason, updated_at: new Date() })
    .where("rollout_id", "=", input.rolloutId)
    .where("wave", "=", input.wave)
    .where("state", "=", "DIRECTED")
    .where("agent_id", "=", sql<string>`any(${input.agentIds}::uuid[])`)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Records an agent's own report (APPLYING or FAILED) on an open membership; returns whether a row
 * changed. A PENDING member of the current wave counts as open: its directive was withdrawn by a
 * halt after it may already have reached the agent, which then reports on it.
 */
export async function recordMemberReport(
  db: Executor,
  input: { tenantId: string; agentId: string; rolloutId: string; state: "APPLYING" | "FAILED"; reason: string },
): Promise<boolean> {
  const result = await db
    .updateTable("rollout_members")
    .set({ state: input.state, reason: input.reason, updated_at: new Date() })
    .where("rollout_id", "=", input.rolloutId)
    .where("agent_id", "=", input.agentId)
    .where("tenant_id", "=", input.tenantId)
    .where((eb) =>
      eb.or([
        eb("state", "in", DIRECTED_MEMBER_STATES),
        eb.and([eb("state", "=", "PENDING"), eb("wave", "=", eb.selectFrom("rollouts").select("current_wave").where("id", "=", input.rolloutId))]),
      ]),
    )
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Marks SUCCEEDED the wave's members whose agent reported the target version in a heartbeat
 * since the wave started. Reads agents in the same statement: the verdict comes from the
 * heartbeat columns, never from the agent's claim, and one statement keeps it one round trip.
 * PENDING members count too: a halt withdrew their directive, possibly after it reached them.
 */
export async function markMembersAtVersion(trx: Executor, input: { rolloutId: string; wave: number; targetVersion: string; since: Date }): Promise<number> {
  const result = await sql`
    update rollout_members m set state = 'SUCCEEDED', reason = '', updated_at = now()
    from agents a
    where m.rollout_id = ${input.rolloutId} and m.wave = ${input.wave} and m.state in ('PENDING', 'DIRECTED', 'APPLYING')
      and a.id = m.agent_id and a.agent_version = ${input.targetVersion} and a.last_seen_at >= ${input.since}`.execute(trx);
  return Number(result.numAffectedRows ?? 0);
}

/**
 * Fails the wave's directed members that have not reached the version as stragglers; returns
 * how many. PENDING ones are left alone: a halt withdrew their directive, it is not their failure.
 */
export async function failOpenMembers(trx: Executor, input: { rolloutId: string; wave: number; reason: string }): Promise<number> {
  const result = await trx
    .updateTable("rollout_members")
    .set({ state: "FAILED", straggler: true, reason: input.reason, updated_at: new Date() })
    .where("rollout_id", "=", input.rolloutId)
    .where("wave", "=", input.wave)
    .where("state", "in", DIRECTED_MEMBER_STATES)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * Elects this replica's transaction as the only verifier pass right now (transaction-scoped
 * advisory lock: released by commit, rollback or a dropped connection).
 */
export async function tryLockVerifier(trx: Executor): Promise<boolean> {
  const lock = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(7243001) as locked`.execute(trx);
  return lock.rows[0]?.locked === true;
}

type RolloutRow = {
  id: string; tenant_id: string; target_version: string; signed_manifest: Uint8Array; state: RolloutStateName; current_wave: number;
  halt_reason: string | null; resume_notes: string[]; auto_advance_after_ms: number; created_at: Date; updated_at: Date;
};

function toRollout(row: RolloutRow): RolloutRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    targetVersion: row.target_version,
    signedManifest: new Uint8Array(row.signed_manifest),
    state: row.state,
    currentWave: row.current_wave,
    haltReason: row.halt_reason,
    resumeNotes: row.resume_notes,
    autoAdvanceAfterMs: row.auto_advance_after_ms,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

type WaveRow = {
  index: number; name: string; state: WaveStateName; failure_budget: number; accepted_failures: number; verify_window_ms: number;
  started_at: Date | null; verify_deadline: Date | null; completed_at: Date | null;
};

function toWave(row: WaveRow): WaveRecord {
  return {
    index: row.index,
    name: row.name,
    state: row.state,
    failureBudget: row.failure_budget,
    acceptedFailures: row.accepted_failures,
    verifyWindowMs: row.verify_window_ms,
    startedAt: row.started_at,
    verifyDeadline: row.verify_deadline,
    completedAt: row.completed_at,
  };
}

/** Rollouts per state, and members per state of the rollouts still running or halted (for the metrics). */
export async function countByState(db: Executor): Promise<{ rollouts: Map<string, number>; members: Map<string, number> }> {
  const [rollouts, members] = await Promise.all([
    sql<{ state: string; n: string }>`select state, count(*) as n from rollouts group by state`.execute(db),
    sql<{ state: string; n: string }>`
      select m.state, count(*) as n from rollout_members m
      join rollouts r on r.id = m.rollout_id
      where r.state in ('RUNNING', 'HALTED') group by m.state`.execute(db),
  ]);
  const toMap = (rows: Array<{ state: string; n: string }>) => new Map(rows.map((r) => [r.state, Number(r.n)]));
  return { rollouts: toMap(rollouts.rows), members: toMap(members.rows) };
}
