import type { ServiceImpl } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { type Event, type MetricPoint, UploadEventsRequestSchema, UploadTelemetryRequestSchema } from "../../gen/agentgateway/v1/ingest_pb.js";
import { admit } from "../ratelimit/admit.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../identity/principal.js";
import { InvalidInputError } from "../errors/errors.js";
import { metrics } from "../observability/metrics.js";
import type { EventInput, PointInput } from "./ingest-store.js";
import { type Instant, timestampToInstant } from "./timestamps.js";
import { storeEvents, storePoints } from "./uploads.js";
import { requestBytesOf } from "../wire/request-bytes.js";

/**
 * AgentGatewayService.UploadTelemetry and UploadEvents. Shape and size limits are enforced by
 * protovalidate, and values PostgreSQL cannot store (NUL, the Timestamp range) by the shared
 * storable-input check, before these run; a missing timestamp is refused here.
 */
export function ingestHandlers(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "uploadTelemetry" | "uploadEvents"> {
  const db = app.database.db;
  return {
    async uploadTelemetry(req, ctx) {
      const agent = agentOf(ctx);
      chargeUpload(app, agent.agentId, req.points.length, requestBytesOf(ctx, UploadTelemetryRequestSchema, req));
      const points = req.points.map(toPointInput);
      return counted("telemetry", await storePoints(db, agent, points));
    },
    async uploadEvents(req, ctx) {
      const agent = agentOf(ctx);
      chargeUpload(app, agent.agentId, req.events.length, requestBytesOf(ctx, UploadEventsRequestSchema, req));
      const events = req.events.map(toEventInput);
      return counted("events", await storeEvents(db, agent, events));
    },
  };
}

function counted<R extends { accepted: number; duplicates: number }>(kind: "telemetry" | "events", result: R): R {
  metrics.uploadItems.add(result.accepted, { kind, result: "accepted" });
  metrics.uploadItems.add(result.duplicates, { kind, result: "duplicate" });
  return result;
}

/** Per-agent upload quotas (items/s and bytes/s): one agent cannot take the ingest path from the others. */
function chargeUpload(app: AppContext, agentId: string, items: number, bytes: number): void {
  admit("upload", [
    [app.rateLimits.uploadItemsPerAgent, agentId, items],
    [app.rateLimits.uploadBytesPerAgent, agentId, bytes],
  ]);
}

function toPointInput(p: MetricPoint, i: number): PointInput {
  const field = `points[${i}]`;
  return { id: p.id, name: p.name, labels: p.labels, value: p.value, observedAt: instant(`${field}.observed_at`, p.observedAt) };
}

function toEventInput(e: Event, i: number): EventInput {
  const field = `events[${i}]`;
  return {
    id: e.id,
    type: e.type,
    severity: e.severity,
    message: e.message,
    attributes: e.attributes,
    payload: e.payload,
    occurredAt: instant(`${field}.occurred_at`, e.occurredAt),
  };
}

function instant(field: string, ts: Timestamp | undefined): Instant {
  const literal = ts ? timestampToInstant(ts) : undefined;
  if (literal === undefined) throw new InvalidInputError(`${field}: must be a valid timestamp between 0001-01-01 and 9999-12-31`);
  return literal;
}
