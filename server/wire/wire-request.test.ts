import type { Http2ServerRequest } from "node:http2";
import { describe, expect, it } from "vitest";
import { wireProtocolOf } from "./wire-request.js";

const PATH = "/agentgateway.v1.AgentGatewayService/ControlStream";
const request = (headers: Record<string, string>, over: Partial<{ httpVersionMajor: number; method: string; url: string }> = {}) =>
  ({ httpVersionMajor: 2, method: "POST", url: PATH, headers, ...over }) as unknown as Http2ServerRequest;

describe("which streaming calls the wire path serves", () => {
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
    expect(wireProtocolOf(request(headers), "stream")).toBe(expected);
  });

  it("leaves other methods and HTTP/1.1 to connect-node", () => {
    const binary = { "content-type": "application/connect+proto" };
    expect(wireProtocolOf(request(binary, { method: "GET" }), "stream")).toBeUndefined();
    expect(wireProtocolOf(request(binary, { httpVersionMajor: 1 }), "stream")).toBeUndefined();
  });
});

describe("which unary calls the wire path serves", () => {
  it.each([
    ["Connect, binary", { "content-type": "application/proto" }, "connect"],
    ["Connect, binary, identity encoding", { "content-type": "application/proto", "content-encoding": "identity" }, "connect"],
    ["gRPC", { "content-type": "application/grpc" }, "grpc"],
    ["gRPC, +proto", { "content-type": "application/grpc+proto" }, "grpc"],
    ["Connect, JSON", { "content-type": "application/json" }, undefined],
    ["Connect, streaming content type", { "content-type": "application/connect+proto" }, undefined],
    ["gRPC-Web", { "content-type": "application/grpc-web+proto" }, undefined],
    ["Connect, gzip", { "content-type": "application/proto", "content-encoding": "gzip" }, undefined],
    ["gRPC, gzip", { "content-type": "application/grpc", "grpc-encoding": "gzip" }, undefined],
    ["Connect with a deadline", { "content-type": "application/proto", "connect-timeout-ms": "1000" }, undefined],
    ["gRPC with a deadline", { "content-type": "application/grpc", "grpc-timeout": "1S" }, undefined],
  ])("%s → %s", (_, headers, expected) => {
    expect(wireProtocolOf(request(headers), "unary")).toBe(expected);
  });

  it("leaves Connect GET and HTTP/1.1 to connect-node", () => {
    const binary = { "content-type": "application/proto" };
    expect(wireProtocolOf(request(binary, { method: "GET" }), "unary")).toBeUndefined();
    expect(wireProtocolOf(request(binary, { httpVersionMajor: 1 }), "unary")).toBeUndefined();
  });
});
