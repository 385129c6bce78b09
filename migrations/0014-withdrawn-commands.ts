import { type Kysely, sql } from "kysely";

// A command the gateway withdrew before the agent acknowledged it (its rollout was halted or
// cancelled) is recorded as WITHDRAWN, not FAILED, so operators can tell it from an agent's
// failure (issue 16). Only agent_commands: tenant-wide notices are never withdrawn. Replicas of
// the previous version show such a row with an unspecified state during a rolling upgrade.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    alter table agent_commands
      drop constraint agent_commands_ack_status_check,
      add constraint agent_commands_ack_status_check check (ack_status in ('OK', 'FAILED', 'UNSUPPORTED', 'WITHDRAWN'))`.execute(db);
}
