import type { ServiceImpl } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { Event, MetricPoint } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../identity/principal.js";
import { InvalidInputError } from "../errors/errors.js";
import type { EventInput, PointInput } from "./ingest-store.js";
import { timestampToSql } from "./timestamps.js";
import { storeEvents, storePoints } from "./uploads.js";

/**
 * AgentGatewayService.UploadTelemetry and UploadEvents. Shape and size limits are enforced by
 * protovalidate before these run; what it cannot express (PostgreSQL's refusal of NUL in text,
 * the Timestamp range) is checked here, so a bad item is INVALID_ARGUMENT naming its field.
 */
export function ingestHandlers(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "uploadTelemetry" | "uploadEvents"> {
  const db = app.database.db;
  return {
    async uploadTelemetry(req, ctx) {
      const agent = agentOf(ctx);
      const points = req.points.map(toPointInput);
      return storePoints(db, agent, points);
    },
    async uploadEvents(req, ctx) {
      const agent = agentOf(ctx);
      const events = req.events.map(toEventInput);
      return storeEvents(db, agent, events);
    },
  };
}

function toPointInput(p: MetricPoint, i: number): PointInput {
  const field = `points[${i}]`;
  noNul(`${field}.id`, p.id);
  noNulInMap(`${field}.labels`, p.labels);
  return { id: p.id, name: p.name, labels: p.labels, value: p.value, observedAt: instant(`${field}.observed_at`, p.observedAt) };
}

function toEventInput(e: Event, i: number): EventInput {
  const field = `events[${i}]`;
  noNul(`${field}.id`, e.id);
  noNul(`${field}.message`, e.message);
  noNulInMap(`${field}.attributes`, e.attributes);
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

function instant(field: string, ts: Timestamp | undefined): string {
  const literal = ts ? timestampToSql(ts) : undefined;
  if (literal === undefined) throw new InvalidInputError(`${field}: must be a valid timestamp between 0001-01-01 and 9999-12-31`);
  return literal;
}

function noNul(field: string, value: string): void {
  if (value.includes("\u0000")) throw new InvalidInputError(`${field}: must not contain NUL characters`);
}

function noNulInMap(field: string, map: Record<string, string>): void {
  for (const [key, value] of Object.entries(map)) {
    if (key.includes("\u0000") || value.includes("\u0000")) throw new InvalidInputError(`${field}: keys and values must not contain NUL characters`);
  }
}
