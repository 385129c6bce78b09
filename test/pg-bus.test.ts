import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, expect, it, vi } from "vitest";
import { PgBus } from "../server/bus/pg-bus.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

// Two replicas' buses on one real PostgreSQL. Publishes are sent in batches (one statement per
// batch, one batch in flight): a burst must still reach the other replica whole and in order.

let database: TestDatabase;
let a: PgBus;
let b: PgBus;
beforeAll(async () => {
  database = await createTestDatabase();
  const logger = pino({ level: "silent" });
  a = new PgBus(database.url, logger, () => {});
  b = new PgBus(database.url, logger, () => {});
  await a.start();
  await b.start();
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.drop();
});

it("delivers a burst of 600 publishes (more than two batches) to the other replica once each, in order, across topics", async () => {
  const sent: string[] = [];
  const received: string[] = [];
  const off = [
    b.subscribe("agent_changed", (id) => received.push(`agent:${id}`)),
    b.subscribe("stream_opened", (s) => received.push(`stream:${s.agentId}|${s.connectionId}`)),
  ];
  try {
    const publishes: Promise<void>[] = [];
    for (let i = 0; i < 600; i++) {
      const agentId = randomUUID();
      if (i % 3 === 0) {
        const connectionId = randomUUID();
        sent.push(`stream:${agentId}|${connectionId}`);
        publishes.push(a.publish("stream_opened", { agentId, connectionId }));
      } else {
        sent.push(`agent:${agentId}`);
        publishes.push(a.publish("agent_changed", agentId));
      }
    }
    await Promise.all(publishes);
    await vi.waitFor(() => expect(received.length).toBe(sent.length), { timeout: 10_000 });
    expect(received).toEqual(sent);
  } finally {
    for (const f of off) f();
  }
});

it("rejects a publish whose notification cannot be sent, and keeps sending the next ones", async () => {
  // A payload over PostgreSQL's 8000-byte limit fails its batch.
  const tooLong = "x".repeat(9000);
  await expect(a.publish("agent_changed", tooLong)).rejects.toThrow();
  const id = randomUUID();
  const got = new Promise<string>((resolve) => {
    const off = b.subscribe("agent_changed", (v) => {
      if (v === id) {
        off();
        resolve(v);
      }
    });
  });
  await a.publish("agent_changed", id);
  expect(await got).toBe(id);
});
