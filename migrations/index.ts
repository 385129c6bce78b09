import type { Migration, MigrationProvider } from "kysely";
import * as m0001 from "./0001-initial.js";
import * as m0002 from "./0002-ingest.js";
import * as m0003 from "./0003-commands.js";
import * as m0004 from "./0004-rollouts.js";
import * as m0005 from "./0005-agent-status.js";
import * as m0006 from "./0006-secret-fingerprints.js";
import * as m0007 from "./0007-revoked-from.js";
import * as m0008 from "./0008-host-labels.js";
import * as m0009 from "./0009-retention-indexes.js";
import * as m0010 from "./0010-ca-certificates.js";
import * as m0011 from "./0011-tenancy.js";
import * as m0012 from "./0012-tenant-commands.js";
import * as m0013 from "./0013-stateless-challenges.js";
import * as m0014 from "./0014-withdrawn-commands.js";

/** All migrations in order. Names sort lexically; append, never rename. */
export const migrations: Record<string, Migration> = {
  "0001-initial": m0001,
  "0002-ingest": m0002,
  "0003-commands": m0003,
  "0004-rollouts": m0004,
  "0005-agent-status": m0005,
  "0006-secret-fingerprints": m0006,
  "0007-revoked-from": m0007,
  "0008-host-labels": m0008,
  "0009-retention-indexes": m0009,
  "0010-ca-certificates": m0010,
  "0011-tenancy": m0011,
  "0012-tenant-commands": m0012,
  "0013-stateless-challenges": m0013,
  "0014-withdrawn-commands": m0014,
};

/** A provider for Kysely's Migrator that needs no file-system scanning (works under tsx and bundles). */
export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
