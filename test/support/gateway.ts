import { randomBytes } from "node:crypto";
import type { Client, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import type { DestinationStream } from "pino";
import { type Gateway, startGateway } from "../../server/app/gateway.js";
import { loadConfig, type SETTINGS } from "../../server/config/config.js";
import { createLogger } from "../../server/observability/logger.js";
import { adminClient } from "./admin.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

type Overrides = Partial<Record<(typeof SETTINGS)[number]["key"], string>>;

/** A real gateway on a random loopback port over a fresh real PostgreSQL database. */
export interface TestGateway {
  gateway: Gateway;
  url: string;
  database: TestDatabase;
  adminKey: string;
  /** The provider's system key (TenantService), from AGW_BOOTSTRAP_SYSTEM_KEY. */
  systemKey: string;
  /** An HTTP/2 transport (Connect protocol) to the gateway. */
  transport: Transport;
  /** A native gRPC transport, as other languages' clients use. */
  grpcTransport: Transport;
  /** A client of an admin service, authenticated with `key` (default: the admin key). */
  admin<S extends DescService>(service: S, key?: string): Client<S>;
  stop(): Promise<void>;
}

/** Starts the gateway in this process. Call `stop()` in afterAll. `logs` receives every log line (JSON). */
export async function startTestGateway(overrides: Overrides = {}, existing?: TestDatabase, logs?: DestinationStream): Promise<TestGateway> {
  const database = existing ?? (await createTestDatabase());
  const adminKey = `test-admin-${randomBytes(24).toString("hex")}`;
  const systemKey = `test-system-${randomBytes(24).toString("hex")}`;
  const config = loadConfig({
    listen: "127.0.0.1:0",
    databaseUrl: database.url,
    bootstrapAdminKey: adminKey,
    bootstrapSystemKey: systemKey,
    logLevel: process.env.AGW_TEST_LOG_LEVEL ?? "silent",
    shutdownGrace: "2s",
    dbPoolSize: "10",
    ...overrides,
  }, {});
  const gateway = await startGateway(config, createLogger(config.logLevel, logs));
  const transport = createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
  const grpcTransport = createGrpcTransport({ baseUrl: gateway.url });
  return {
    gateway,
    url: gateway.url,
    database,
    adminKey,
    systemKey,
    transport,
    grpcTransport,
    admin: (service, key = adminKey) => adminClient(service, gateway.url, key),
    stop: async () => {
      await gateway.stop();
      if (!existing) await database.drop();
    },
  };
}
