import type { ColumnType, Generated } from "kysely";

// Row types of the current schema (the sum of migrations/). Queries use these; services map
// them to domain objects and never hand them to handlers.

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
type Json<T> = ColumnType<T, string, string>;
/** PostgreSQL bigint arrives as a string from `pg`; we convert at the query edge. */
type BigIntColumn = ColumnType<string | number | bigint, number | string | bigint, number | string | bigint>;

export interface TenantTable {
  id: string;
  name: string;
  created_at: CreatedAt;
  audit_seq: Generated<BigIntColumn>;
  audit_head: Generated<Uint8Array>;
  /** Set while the tenant is suspended (migration 0009). */
  suspended_at: Timestamp | null;
  suspend_reason: Generated<string>;
}

/** The provider's credentials (migration 0009): not an operator of any tenant. */
export interface SystemKeyTable {
  id: string;
  name: string;
  key_hash: Uint8Array;
  display_prefix: string;
  created_at: CreatedAt;
  revoked_at: Timestamp | null;
}

/** The provider audit chain (migration 0009), hashed as a tenant chain with tenant_id "". */
export interface ProviderAuditEventTable {
  seq: BigIntColumn;
  actor: string;
  action: string;
  target: string;
  data: Json<Record<string, unknown>>;
  created_at: Timestamp;
  prev_hash: Uint8Array;
  hash: Uint8Array;
}

/** The one row holding the provider chain's head; its lock orders provider audit writers. */
export interface ProviderAuditHeadTable {
  id: Generated<boolean>;
  seq: Generated<BigIntColumn>;
  head: Generated<Uint8Array>;
}

export type RoleName = "admin" | "editor" | "viewer";

export interface ApiKeyTable {
  id: string;
  tenant_id: string;
  name: string;
  role: RoleName;
  key_hash: Uint8Array;
  display_prefix: string;
  created_by: string;
  created_at: CreatedAt;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
}

export interface EnrollmentTokenTable {
  id: string;
  tenant_id: string;
  token_hash: Uint8Array;
  display_prefix: string;
  description: string;
  pinned_agent_name: string | null;
  labels: Json<Record<string, string>>;
  requires_approval: boolean;
  max_uses: number;
  uses: Generated<number>;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  created_by: string;
  created_at: CreatedAt;
}

export type AgentStateName = "PENDING_APPROVAL" | "ACTIVE" | "REJECTED" | "REVOKED" | "RETIRED";

export interface AgentTable {
  id: string;
  tenant_id: string;
  name: string;
  identity_public_key: Uint8Array;
  verification_code: string;
  state: AgentStateName;
  /** Labels an operator set (the enrollment token's); the only ones selectors match by default. */
  labels: Json<Record<string, string>>;
  /** Labels the agent claimed about itself at Register (migration 0008); matched only when asked. */
  host_labels: ColumnType<Record<string, string>, string | undefined, string>;
  hostname: Generated<string>;
  os: Generated<string>;
  arch: Generated<string>;
  agent_version: Generated<string>;
  enrollment_token_id: string | null;
  created_at: CreatedAt;
  approved_at: Timestamp | null;
  revoked_at: Timestamp | null;
  revoke_reason: string | null;
  /** The state the agent had when it was revoked; un-revoke returns it there (migration 0007). */
  revoked_from: AgentStateName | null;
  last_seen_at: Timestamp | null;
  /** The liveness the sweeper last recorded (migration 0002). */
  liveness: Generated<LivenessName>;
  /** Last command sequence number handed out (migration 0003). */
  command_seq: Generated<BigIntColumn>;
  /** The agent's own health status from its latest heartbeat (migration 0005). */
  reported_status: Generated<ReportedStatusName>;
  uptime_seconds: ColumnType<string | number | bigint, string | number | bigint | undefined, string | number | bigint>;
}

export type ReportedStatusName = "UNSPECIFIED" | "HEALTHY" | "DEGRADED" | "UNHEALTHY";

export type LivenessName = "ONLINE" | "STALE" | "OFFLINE";

export interface TelemetryPointTable {
  tenant_id: string;
  agent_id: string;
  point_id: string;
  name: string;
  labels: Json<Record<string, string>>;
  value: number;
  observed_at: Timestamp;
  received_at: Generated<Date>;
}

export interface AgentEventTable {
  tenant_id: string;
  agent_id: string;
  event_id: string;
  type: string;
  severity: number;
  message: string;
  attributes: Json<Record<string, string>>;
  payload: Uint8Array;
  occurred_at: Timestamp;
  received_at: Generated<Date>;
}

export interface AuthChallengeTable {
  id: string;
  tenant_id: string;
  agent_id: string;
  nonce: Uint8Array;
  expires_at: Timestamp;
}

/** A MAC key for stateless challenges (0013); the newest signs, all verify. */
export interface HandshakeKeyTable {
  id: number;
  secret: Uint8Array;
  created_at: Generated<Date>;
}

/** An answered challenge, kept until retention removes it after its expiry (single use). */
export interface UsedChallengeTable {
  id: string;
  tenant_id: string;
  agent_id: string;
  expires_at: Timestamp;
}

export interface SessionTable {
  agent_id: string;
  id: string;
  tenant_id: string;
  token_hash: Uint8Array;
  created_at: CreatedAt;
  expires_at: Timestamp;
}

export interface AuditEventTable {
  tenant_id: string;
  seq: BigIntColumn;
  actor: string;
  action: string;
  target: string;
  data: Json<Record<string, unknown>>;
  created_at: Timestamp;
  prev_hash: Uint8Array;
  hash: Uint8Array;
}

/** WITHDRAWN: the gateway took the command back before the agent acknowledged it (agent_commands only). */
export type AckStatusName = "OK" | "FAILED" | "UNSUPPORTED" | "WITHDRAWN";

export interface AgentCommandTable {
  agent_id: string;
  sequence: BigIntColumn;
  tenant_id: string;
  command_id: string;
  kind: string;
  ref: string | null;
  body: Uint8Array;
  created_at: CreatedAt;
  acked_at: Timestamp | null;
  ack_status: AckStatusName | null;
  ack_reason: string | null;
}

/** The per-tenant command sequence allocator (migration 0012). */
export interface CommandCounterTable {
  tenant_id: string;
  last_sequence: BigIntColumn;
}

/** A tenant-wide notice: one row for every agent of the tenant but `except_agent_id`. */
export interface TenantCommandTable {
  tenant_id: string;
  sequence: BigIntColumn;
  command_id: string;
  kind: string;
  ref: string | null;
  except_agent_id: string | null;
  body: Uint8Array;
  created_at: CreatedAt;
}

/** An agent's acknowledgement of a tenant-wide notice. */
export interface TenantCommandAckTable {
  agent_id: string;
  sequence: BigIntColumn;
  tenant_id: string;
  acked_at: CreatedAt;
  ack_status: AckStatusName;
  ack_reason: Generated<string>;
}

export interface ReleaseKeyTable {
  id: string;
  tenant_id: string;
  name: string;
  public_key: Uint8Array;
  created_at: CreatedAt;
  revoked_at: Timestamp | null;
}

export type RolloutStateName = "PLANNED" | "RUNNING" | "HALTED" | "COMPLETED" | "CANCELLED";
export type WaveStateName = "PENDING" | "IN_PROGRESS" | "SUCCEEDED" | "FAILED";
export type MemberStateName = "PENDING" | "DIRECTED" | "APPLYING" | "SUCCEEDED" | "FAILED";

export interface RolloutTable {
  id: string;
  tenant_id: string;
  target_version: string;
  signed_manifest: Uint8Array;
  release_key_id: string;
  state: RolloutStateName;
  current_wave: Generated<number>;
  halt_reason: string | null;
  resume_notes: ColumnType<string[], string | undefined, string>;
  auto_advance_after_ms: number;
  target_selector: Json<Record<string, string>>;
  created_by: string;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface RolloutWaveTable {
  rollout_id: string;
  index: number;
  name: string;
  state: WaveStateName;
  failure_budget: number;
  accepted_failures: Generated<number>;
  verify_window_ms: number;
  started_at: Timestamp | null;
  verify_deadline: Timestamp | null;
  completed_at: Timestamp | null;
}

export interface RolloutMemberTable {
  rollout_id: string;
  agent_id: string;
  tenant_id: string;
  wave: number;
  state: MemberStateName;
  reason: Generated<string>;
  straggler: Generated<boolean>;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export type CaRoleName = "root" | "intermediate";

/** A CA certificate of the internal CA (migration 0010); the key is sealed, or absent when kept elsewhere. */
export interface CaCertificateTable {
  id: string;
  role: CaRoleName;
  certificate_der: Uint8Array;
  sealed_key: string | null;
  fingerprint_sha256: string;
  not_before: Timestamp;
  not_after: Timestamp;
  created_at: CreatedAt;
  retired_at: Timestamp | null;
}

/** The whole database as Kysely sees it. */
export interface Schema {
  tenants: TenantTable;
  system_keys: SystemKeyTable;
  provider_audit_events: ProviderAuditEventTable;
  provider_audit_head: ProviderAuditHeadTable;
  api_keys: ApiKeyTable;
  enrollment_tokens: EnrollmentTokenTable;
  agents: AgentTable;
  auth_challenges: AuthChallengeTable;
  handshake_keys: HandshakeKeyTable;
  used_challenges: UsedChallengeTable;
  sessions: SessionTable;
  audit_events: AuditEventTable;
  agent_commands: AgentCommandTable;
  command_counters: CommandCounterTable;
  tenant_commands: TenantCommandTable;
  tenant_command_acks: TenantCommandAckTable;
  release_keys: ReleaseKeyTable;
  rollouts: RolloutTable;
  rollout_waves: RolloutWaveTable;
  rollout_members: RolloutMemberTable;
  telemetry_points: TelemetryPointTable;
  agent_events: AgentEventTable;
  ca_certificates: CaCertificateTable;
}
