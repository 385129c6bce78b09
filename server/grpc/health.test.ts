import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatus, ServingStatus, registerHealth } from "./health.js";

function healthClient(health: HealthStatus) {
  return createClient(Health, createRouterTransport((router) => registerHealth(router, health)));
}

/** Collects `count` statuses from a watch, then stops it. */
async function take(stream: AsyncIterable<{ status: ServingStatus }>, count: number): Promise<ServingStatus[]> {
  const seen: ServingStatus[] = [];
  for await (const { status } of stream) {
    seen.push(status);
    if (seen.length === count) {
      break;
    }
  }
  return seen;
}

describe("HealthStatus", () => {
  it("starts NOT_SERVING overall and knows no other service", () => {
    const health = new HealthStatus();
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    expect(health.get("agentgateway.v1.AgentGatewayService")).toBeUndefined();
  });

  it("freezes everything at NOT_SERVING on shutdown until resume", () => {
    const health = new HealthStatus();
    health.set("", ServingStatus.SERVING);
    health.set("a", ServingStatus.SERVING);
    health.shutdown();
    expect([...health.list()]).toEqual([
      ["", ServingStatus.NOT_SERVING],
      ["a", ServingStatus.NOT_SERVING],
    ]);
    health.set("", ServingStatus.SERVING);
    expect(health.get("")).toBe(ServingStatus.NOT_SERVING);
    health.resume();
    health.set("", ServingStatus.SERVING);
    expect(health.get("")).toBe(ServingStatus.SERVING);
  });

  it("watch ends when its signal aborts", async () => {
    const health = new HealthStatus();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const status of health.watch("", abort.signal)) {
        seen.push(status);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    abort.abort();
    await done;
    expect(seen).toEqual([ServingStatus.NOT_SERVING]);
  });
});

describe("grpc.health.v1.Health", () => {
  it("Check reports the overall status and follows set()", async () => {
    const health = new HealthStatus();
    const client = healthClient(health);
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    health.set("", ServingStatus.SERVING);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
  });

  it("Check of an unknown service is NOT_FOUND", async () => {
    const client = healthClient(new HealthStatus());
    const error = await client.check({ service: "nope.v1.Nope" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe('unknown service "nope.v1.Nope"');
  });

  it("List returns every known service", async () => {
    const health = new HealthStatus();
    health.set("", ServingStatus.SERVING);
    health.set("agentgateway.v1.AgentGatewayService", ServingStatus.NOT_SERVING);
    const { statuses } = await healthClient(health).list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([name, response]) => [name, response.status]))).toEqual({
      "": ServingStatus.SERVING,
      "agentgateway.v1.AgentGatewayService": ServingStatus.NOT_SERVING,
    });
  });

  it("Watch streams the current status, then each change", async () => {
    const health = new HealthStatus();
    const statuses = take(healthClient(health).watch({}), 3);
    await new Promise((resolve) => setTimeout(resolve, 10));
    health.set("", ServingStatus.SERVING);
    await new Promise((resolve) => setTimeout(resolve, 10));
    health.set("", ServingStatus.NOT_SERVING);
    expect(await statuses).toEqual([ServingStatus.NOT_SERVING, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });

  it("Watch of an unknown service says SERVICE_UNKNOWN and keeps going", async () => {
    const health = new HealthStatus();
    const statuses = take(healthClient(health).watch({ service: "late" }), 2);
    await new Promise((resolve) => setTimeout(resolve, 10));
    health.set("late", ServingStatus.SERVING);
    expect(await statuses).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
  });

  it("Watch ends when the client cancels", async () => {
    const health = new HealthStatus();
    const abort = new AbortController();
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const { status } of healthClient(health).watch({}, { signal: abort.signal })) {
        seen.push(status);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    abort.abort();
    const error = await done.catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.Canceled);
    expect(seen).toEqual([ServingStatus.NOT_SERVING]);
  });

  it("shutdown sends NOT_SERVING to watchers and ends their calls", async () => {
    const health = new HealthStatus();
    health.set("", ServingStatus.SERVING);
    const seen: ServingStatus[] = [];
    const done = (async () => {
      for await (const { status } of healthClient(health).watch({})) {
        seen.push(status);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 10));
    health.shutdown();
    await done;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });
});
