import { randomBytes } from "node:crypto";
import { createConnectTransport } from "@connectrpc/connect-node";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, handshake, register } from "../agent/lib/direct.js";
import { adminClient } from "./support/admin.js";
import { newIdentity } from "./support/agents.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { spawnGateway } from "./support/gateway-process.js";
import { openStream } from "./support/stream.js";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database?.drop();
});

describe("graceful shutdown", () => {
  it("tells every open stream to reconnect after a jittered delay, then exits cleanly", async () => {
    const adminKey = `shutdown-${randomBytes(20).toString("hex")}`;
    const gw = await spawnGateway({ DATABASE_URL: database.url, AGW_BOOTSTRAP_ADMIN_KEY: adminKey, AGW_DRAIN_SPREAD: "20s" });
    const transport = createConnectTransport({ baseUrl: gw.url, httpVersion: "2" });
    const { secret } = await adminClient(EnrollmentTokenService, gw.url, adminKey).createEnrollmentToken({ maxUses: 3 });
    const client = gatewayClient(transport);
    const streams = [];
    for (let i = 0; i < 3; i++) {
      const identity = newIdentity();
      const reg = await register(client, { token: secret, identity, name: `drain-${i}` });
      const stream = openStream(client, await handshake(client, reg.agentId, identity));
      expect((await stream.next()).kind.case).toBe("welcome");
      streams.push(stream);
    }
    const exited = new Promise<number | null>((resolve) => gw.child.once("exit", (code) => resolve(code)));
    gw.child.kill("SIGTERM");
    for (const stream of streams) {
      const goAway = await stream.next();
      if (goAway.kind.case !== "goAway") throw new Error(`expected goAway, got ${goAway.kind.case}`);
      expect(goAway.kind.value.reason).toBe(GoAwayReason.DRAIN);
      const delay = goAway.kind.value.reconnectAfter ? durationMs(goAway.kind.value.reconnectAfter) : -1;
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(20_000);
      await stream.ended;
    }
    expect(await exited).toBe(0);
    expect(gw.output()).not.toMatch(/"level":5\d/); // no error or fatal lines
  });
});
