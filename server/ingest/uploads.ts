import type { Executor } from "../db/database.js";
import { type EventInput, insertEvents, insertPoints, type PointInput } from "./ingest-store.js";

/** What an upload did: `accepted` rows are new, `duplicates` were stored before or repeated in the batch. */
export interface UploadResult {
  accepted: number;
  duplicates: number;
}

/** The agent an upload belongs to (from its session, never from the request). */
export interface Uploader {
  tenantId: string;
  agentId: string;
}

/**
 * Stores an agent's points idempotently: one statement per call, ids the agent already stored
 * are skipped, and an id repeated inside the batch keeps its first occurrence.
 */
export async function storePoints(db: Executor, uploader: Uploader, points: PointInput[]): Promise<UploadResult> {
  const unique = firstById(points);
  const accepted = await insertPoints(db, uploader.tenantId, uploader.agentId, unique);
  return { accepted, duplicates: points.length - accepted };
}

/** Stores an agent's events idempotently, like storePoints. */
export async function storeEvents(db: Executor, uploader: Uploader, events: EventInput[]): Promise<UploadResult> {
  const unique = firstById(events);
  const accepted = await insertEvents(db, uploader.tenantId, uploader.agentId, unique);
  return { accepted, duplicates: events.length - accepted };
}

/**
 * Drops repeated ids before the INSERT. PostgreSQL would skip them too, but deciding here keeps
 * "the first occurrence wins" explicit and spares the server the conflicting rows.
 */
function firstById<T extends { id: string }>(items: T[]): T[] {
  const seen = new Set<string>();
  const unique: T[] = [];
  for (const item of items) {
    if (seen.has(item.id)) continue;
    seen.add(item.id);
    unique.push(item);
  }
  return unique.length === items.length ? items : unique;
}
