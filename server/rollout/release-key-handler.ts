import { randomUUID } from "node:crypto";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ReleaseKeyService } from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import type { AppContext } from "../app/context.js";
import { appendAudit } from "../audit/audit-log.js";
import { isUniqueViolation } from "../db/errors.js";
import { AlreadyExistsError, InvalidInputError, NotFoundError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import { isUsablePublicKey } from "../../client/protocol/ed25519.js";

type Row = { id: string; name: string; public_key: Uint8Array; created_at: Date; revoked_at: Date | null };

function toProto(row: Row) {
  return {
    id: row.id,
    name: row.name,
    publicKey: new Uint8Array(row.public_key),
    createdAt: timestampFromDate(row.created_at),
    revokedAt: row.revoked_at ? timestampFromDate(row.revoked_at) : undefined,
  };
}

const COLUMNS = ["id", "name", "public_key", "created_at", "revoked_at"] as const;

/** agentgateway.admin.v1.ReleaseKeyService. */
export function releaseKeyService(app: AppContext): ServiceImpl<typeof ReleaseKeyService> {
  const db = app.database.db;
  return {
    async registerReleaseKey(req, ctx) {
      const operator = operatorOf(ctx);
      if (!isUsablePublicKey(req.publicKey)) throw new InvalidInputError("public_key is not a usable ed25519 key (small-order or non-canonical)");
      try {
        const row = await db.transaction().execute(async (trx) => {
          const inserted = await trx
            .insertInto("release_keys")
            .values({ id: randomUUID(), tenant_id: operator.tenantId, name: req.name, public_key: req.publicKey })
            .returning(COLUMNS)
            .executeTakeFirstOrThrow();
          await appendAudit(trx, {
            tenantId: operator.tenantId,
            actor: { kind: "operator", keyId: operator.keyId },
            action: "release_key.registered",
            target: `release_key:${inserted.id}`,
            data: { name: req.name, public_key: Buffer.from(req.publicKey).toString("hex") },
          });
          return inserted;
        });
        return { key: toProto(row) };
      } catch (err) {
        if (isUniqueViolation(err)) throw new AlreadyExistsError("this release key is already registered");
        throw err;
      }
    },
    async listReleaseKeys(req, ctx) {
      let query = db.selectFrom("release_keys").select(COLUMNS).where("tenant_id", "=", operatorOf(ctx).tenantId);
      if (!req.includeRevoked) query = query.where("revoked_at", "is", null);
      const rows = await query.orderBy("created_at", "desc").execute();
      return { keys: rows.map(toProto) };
    },
    async revokeReleaseKey(req, ctx) {
      const operator = operatorOf(ctx);
      const row = await db.transaction().execute(async (trx) => {
        const updated = await trx
          .updateTable("release_keys")
          .set({ revoked_at: new Date() })
          .where("tenant_id", "=", operator.tenantId)
          .where("id", "=", req.id)
          .where("revoked_at", "is", null)
          .returning(COLUMNS)
          .executeTakeFirst();
        if (updated) {
          await appendAudit(trx, { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId }, action: "release_key.revoked", target: `release_key:${req.id}` });
          return updated;
        }
        const existing = await trx.selectFrom("release_keys").select(COLUMNS).where("tenant_id", "=", operator.tenantId).where("id", "=", req.id).executeTakeFirst();
        if (!existing) throw new NotFoundError(`no release key ${req.id}`);
        return existing;
      });
      return { key: toProto(row) };
    },
  };
}
