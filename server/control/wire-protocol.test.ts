import type { Http2ServerRequest } from "node:http2";
import { describe, expect, it } from "vitest";
import { wireProtocolOf } from "./wire-control-stream.js";

const PATH = "/agentgateway.v1.AgentGatewayService/ControlStream";
const request = (headers: Record<string, string>, over: Partial<{ httpVersionMajor: number; method: string; url: string }> = {}) =>
  ({ httpVersionMajor: 2, method: "POST", url: PATH, headers, ...over }) as unknown as Http2ServerRequest;

describe("which ControlStream calls the wire path serves", () => {
  it.each([
    ["Connect, binary", { "content-type": "application/connect+proto" }, "connect"],
    ["Connect, binary, identity encoding", { "content-type": "application/connect+proto", "connect-content-encoding": "identity" }, "connect"],
    ["gRPC", { "content-type": "application/grpc" }, "grpc"],
    ["gRPC, +proto", { "content-type": "application/grpc+proto" }, "grpc"],
    ["Connect, JSON", { "content-type": "application/connect+json" }, undefined],
    ["gRPC, JSON", { "content-type": "application/grpc+json" }, undefined],
    ["gRPC-Web", { "content-type": "application/grpc-web+proto" }, undefined],
    ["Connect, gzip", { "content-type": "application/connect+proto", "connect-content-encoding": "gzip" }, undefined],
    ["gRPC, gzip", { "content-type": "application/grpc", "grpc-encoding": "gzip" }, undefined],
    ["Connect with a deadline", { "content-type": "application/connect+proto", "connect-timeout-ms": "1000" }, undefined],
    ["gRPC with a deadline", { "content-type": "application/grpc", "grpc-timeout": "1S" }, undefined],
  ])("%s → %s", (_, headers, expected) => {
    expect(wireProtocolOf(request(headers))).toBe(expected);
  });

  it("leaves other paths, methods and HTTP/1.1 to connect-node", () => {
    const binary = { "content-type": "application/connect+proto" };
    expect(wireProtocolOf(request(binary, { url: "/agentgateway.v1.AgentGatewayService/UploadHeartbeat" }))).toBeUndefined();
    expect(wireProtocolOf(request(binary, { url: `${PATH}?x=1` }))).toBeUndefined();
    expect(wireProtocolOf(request(binary, { method: "GET" }))).toBeUndefined();
    expect(wireProtocolOf(request(binary, { httpVersionMajor: 1 }))).toBeUndefined();
  });
});
