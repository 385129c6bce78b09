import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { field as validateFieldExtension } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, createClient } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { file_agentgateway_v1_common, HostFactsSchema } from "../../gen/agentgateway/v1/common_pb.js";
import { AgentGatewayService, file_agentgateway_v1_gateway } from "../../gen/agentgateway/v1/gateway_pb.js";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection, ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type { ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { listen } from "../http/listener.js";
import type { Listener } from "../http/listener.js";
import { HealthStatus, ServingStatus, registerHealth } from "./health.js";
import { registerReflection } from "./reflection.js";

const gatewayFile = "agentgateway/v1/gateway.proto";
const bufBin = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

let listener: Listener;
// HTTP version per request path, to prove which protocol a buf curl call really used.
const httpVersions: string[] = [];

beforeAll(async () => {
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  const handler = connectNodeAdapter({
    routes: (router) => {
      registerReflection(router, [file_agentgateway_v1_gateway]);
      registerHealth(router, health);
    },
  });
  listener = await listen({
    host: "127.0.0.1",
    port: 0,
    handler: (req, res) => {
      httpVersions.push(`${req.httpVersion} ${req.url ?? ""}`);
      handler(req, res);
    },
  });
});

afterAll(async () => {
  await listener.close(1_000);
});

type Request = MessageInitShape<typeof ServerReflectionRequestSchema>;

/** Sends requests on one reflection stream and returns the responses, in order. */
async function reflect(...requests: Request[]): Promise<ServerReflectionResponse[]> {
  const client: Client<typeof ServerReflection> = createClient(
    ServerReflection,
    createGrpcTransport({ baseUrl: listener.url }),
  );
  async function* send() {
    for (const request of requests) {
      yield create(ServerReflectionRequestSchema, request);
    }
  }
  const responses: ServerReflectionResponse[] = [];
  for await (const response of client.serverReflectionInfo(send())) {
    responses.push(response);
  }
  return responses;
}

async function reflectOne(request: Request): Promise<ServerReflectionResponse> {
  const [response] = await reflect(request);
  if (!response) {
    throw new Error("no reflection response");
  }
  return response;
}

/** The file names in a file_descriptor_response, in order. */
function fileNames(response: ServerReflectionResponse): string[] {
  if (response.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${response.messageResponse.case}`);
  }
  return response.messageResponse.value.fileDescriptorProto.map(
    (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
  );
}

function expectError(response: ServerReflectionResponse, code: Code, message: string): void {
  expect(response.messageResponse).toEqual({
    case: "errorResponse",
    value: expect.objectContaining({ errorCode: code, errorMessage: message }),
  });
}

describe("grpc.reflection.v1.ServerReflection", () => {
  it("lists the served services plus reflection and health", async () => {
    const response = await reflectOne({ messageRequest: { case: "listServices", value: "" } });
    expect(response.messageResponse.case).toBe("listServicesResponse");
    const names =
      response.messageResponse.case === "listServicesResponse"
        ? response.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names.sort()).toEqual([
      "agentgateway.v1.AgentGatewayService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("returns the file containing a service together with all its imports", async () => {
    const response = await reflectOne({
      host: "example",
      messageRequest: { case: "fileContainingSymbol", value: AgentGatewayService.typeName },
    });
    expect(response.validHost).toBe("example");
    expect(response.originalRequest?.messageRequest).toEqual({
      case: "fileContainingSymbol",
      value: "agentgateway.v1.AgentGatewayService",
    });
    const names = fileNames(response);
    expect(names[0]).toBe(gatewayFile);
    expect(names).toEqual(
      expect.arrayContaining([
        "agentgateway/v1/common.proto",
        "buf/validate/validate.proto",
        "google/protobuf/descriptor.proto",
        "google/protobuf/duration.proto",
        "google/protobuf/timestamp.proto",
      ]),
    );
    // The answer is closed under imports: a client can link it without asking again.
    const protos =
      response.messageResponse.case === "fileDescriptorResponse"
        ? response.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b))
        : [];
    for (const proto of protos) {
      for (const dependency of proto.dependency) {
        expect(names).toContain(dependency);
      }
    }
    expect(new Set(names).size).toBe(names.length);
  });

  it.each([
    ["a method", "agentgateway.v1.AgentGatewayService.Register", gatewayFile],
    ["a message", HostFactsSchema.typeName, file_agentgateway_v1_common.proto.name],
    ["a field", `${HostFactsSchema.typeName}.${HostFactsSchema.fields[0]?.name ?? ""}`, "agentgateway/v1/common.proto"],
    ["an enum", "agentgateway.v1.AgentState", "agentgateway/v1/common.proto"],
    ["an enum value", "agentgateway.v1.AGENT_STATE_ACTIVE", "agentgateway/v1/common.proto"],
    ["a nested message", "google.protobuf.DescriptorProto.ExtensionRange", "google/protobuf/descriptor.proto"],
    ["a nested enum", "google.protobuf.FieldDescriptorProto.Type", "google/protobuf/descriptor.proto"],
    ["an extension", "buf.validate.field", "buf/validate/validate.proto"],
    ["the health service", "grpc.health.v1.Health", "grpc/health/v1/health.proto"],
  ])("finds the file containing %s", async (_, symbol, file) => {
    const response = await reflectOne({ messageRequest: { case: "fileContainingSymbol", value: symbol } });
    expect(fileNames(response)[0]).toBe(file);
  });

  it("answers an unknown symbol with error_response NOT_FOUND", async () => {
    const response = await reflectOne({
      messageRequest: { case: "fileContainingSymbol", value: "agentgateway.v1.NoSuchThing" },
    });
    expectError(response, Code.NotFound, 'symbol "agentgateway.v1.NoSuchThing" not found');
  });

  it("returns a file by name, with its imports", async () => {
    const response = await reflectOne({
      messageRequest: { case: "fileByFilename", value: "buf/validate/validate.proto" },
    });
    const names = fileNames(response);
    expect(names[0]).toBe("buf/validate/validate.proto");
    expect(names).toContain("google/protobuf/descriptor.proto");
    expectError(
      await reflectOne({ messageRequest: { case: "fileByFilename", value: "nope.proto" } }),
      Code.NotFound,
      'file "nope.proto" not found',
    );
  });

  it("resolves extensions by extendee and number", async () => {
    const byNumber = await reflectOne({
      messageRequest: {
        case: "fileContainingExtension",
        value: { containingType: "google.protobuf.FieldOptions", extensionNumber: validateFieldExtension.number },
      },
    });
    expect(fileNames(byNumber)[0]).toBe("buf/validate/validate.proto");

    const numbers = await reflectOne({
      messageRequest: { case: "allExtensionNumbersOfType", value: "google.protobuf.FieldOptions" },
    });
    expect(numbers.messageResponse.case).toBe("allExtensionNumbersResponse");
    if (numbers.messageResponse.case === "allExtensionNumbersResponse") {
      expect(numbers.messageResponse.value.baseTypeName).toBe("google.protobuf.FieldOptions");
      expect(numbers.messageResponse.value.extensionNumber).toContain(validateFieldExtension.number);
    }

    expectError(
      await reflectOne({
        messageRequest: {
          case: "fileContainingExtension",
          value: { containingType: "google.protobuf.FieldOptions", extensionNumber: 4242 },
        },
      }),
      Code.NotFound,
      'extension 4242 of "google.protobuf.FieldOptions" not found',
    );
    expectError(
      await reflectOne({ messageRequest: { case: "allExtensionNumbersOfType", value: "no.Such" } }),
      Code.NotFound,
      'message type "no.Such" not found',
    );
  });

  it("answers several requests on one stream in order", async () => {
    const responses = await reflect(
      { messageRequest: { case: "listServices", value: "" } },
      { messageRequest: { case: "fileContainingSymbol", value: "no.Such" } },
      { messageRequest: { case: "fileByFilename", value: gatewayFile } },
    );
    expect(responses.map((r) => r.messageResponse.case)).toEqual([
      "listServicesResponse",
      "errorResponse",
      "fileDescriptorResponse",
    ]);
  });
});

describe("grpc.reflection.v1alpha.ServerReflection", () => {
  it("is served too, over Connect as well", async () => {
    const client = createClient(
      ServerReflectionV1Alpha,
      createConnectTransport({ baseUrl: listener.url, httpVersion: "2" }),
    );
    async function* send() {
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: AgentGatewayService.typeName } };
    }
    const cases: string[] = [];
    for await (const response of client.serverReflectionInfo(send())) {
      if (response.messageResponse.case === "fileDescriptorResponse") {
        cases.push(fromBinary(FileDescriptorProtoSchema, response.messageResponse.value.fileDescriptorProto[0] ?? new Uint8Array()).name);
      }
    }
    expect(cases).toEqual([gatewayFile]);
  });
});

const run = promisify(execFile);

/** Runs `buf curl` with the given arguments; never blocks the event loop the server runs on. */
async function bufCurl(...args: string[]): Promise<string> {
  const { stdout } = await run(bufBin, ["curl", ...args], { timeout: 20_000 });
  return stdout;
}

describe.skipIf(!existsSync(bufBin))("buf curl", () => {
  it("lists the gateway's methods through reflection, with no local protos", async () => {
    // With reflection, --list-methods takes the base URL (a service in the path is read as
    // a path prefix), so filter the listing down to the gateway service.
    const stdout = await bufCurl("--list-methods", listener.url);
    const methods = stdout
      .split("\n")
      .filter((line) => line.startsWith("agentgateway.v1.AgentGatewayService/"))
      .sort();
    expect(methods).toEqual(
      AgentGatewayService.methods.map((m) => `agentgateway.v1.AgentGatewayService/${m.name}`).sort(),
    );
    // Not an empty list on both sides: the first RPC is there (a fixed count went stale with every new RPC).
    expect(methods).toContain("agentgateway.v1.AgentGatewayService/Register");
  });

  it.each(["grpc", "connect", "grpcweb"])("checks health over HTTP/2 with --protocol %s", async (protocol) => {
    const stdout = await bufCurl(
      "--http2-prior-knowledge",
      "--protocol",
      protocol,
      `${listener.url}/grpc.health.v1.Health/Check`,
    );
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  describe("over HTTP/1.1", () => {
    let dir: string;
    let schema: string;
    beforeAll(async () => {
      // Reflection needs HTTP/2, and buf curl then uses HTTP/2 for the call too; an HTTP/1.1
      // call needs --schema. The schema comes from the embedded descriptor, not from protos.
      dir = await mkdtemp(join(tmpdir(), "reflection-test-"));
      schema = join(dir, "health.binpb");
      const set = create(FileDescriptorSetSchema, { file: [file_grpc_health_v1_health.proto] });
      await writeFile(schema, toBinary(FileDescriptorSetSchema, set));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it.each(["connect", "grpcweb"])("checks health with --protocol %s", async (protocol) => {
      httpVersions.length = 0;
      const stdout = await bufCurl("--schema", schema, "--protocol", protocol, `${listener.url}/grpc.health.v1.Health/Check`);
      expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
      expect(httpVersions).toEqual(["1.1 /grpc.health.v1.Health/Check"]);
    });
  });
});
