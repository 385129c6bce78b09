import { createRegistry, toBinary } from "@bufbuild/protobuf";
import type { DescEnum, DescFile, DescMessage, Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import {
  ServerReflection as ServerReflectionV1,
  file_grpc_reflection_v1_reflection,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1Alpha,
  file_grpc_reflection_v1alpha_reflection,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/**
 * The oneof of a reflection request. v1 and v1alpha messages have the same shape, so one
 * resolver answers both.
 */
type ReflectionQuery =
  | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: undefined; value?: undefined };

/** The oneof of a reflection response, as a plain init shape valid for v1 and v1alpha. */
type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * Serves gRPC server reflection (grpc.reflection.v1 and v1alpha) for the given files, so
 * `buf curl` and grpcurl work without local protos.
 */
export function registerReflection(router: ConnectRouter, files: DescFile[]): void {
  const index = createReflectionIndex(files);
  const v1: ServiceImpl<typeof ServerReflectionV1> = {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield { validHost: request.host, originalRequest: request, messageResponse: index.answer(request.messageRequest) };
      }
    },
  };
  const v1alpha: ServiceImpl<typeof ServerReflectionV1Alpha> = {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield { validHost: request.host, originalRequest: request, messageResponse: index.answer(request.messageRequest) };
      }
    },
  };
  router.service(ServerReflectionV1, v1);
  router.service(ServerReflectionV1Alpha, v1alpha);
}

/** The lookups behind the reflection service, built once from the served files. */
interface ReflectionIndex {
  answer(query: ReflectionQuery): ReflectionAnswer;
}

function createReflectionIndex(served: DescFile[]): ReflectionIndex {
  // Reflection and health are always listed: clients probe them before anything else.
  const roots = uniqueFiles([
    ...served,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
    file_grpc_health_v1_health,
  ]);
  const filesByName = new Map<string, DescFile>();
  for (const file of roots) {
    collectFiles(file, filesByName);
  }
  const registry = createRegistry(...filesByName.values());
  const serviceNames = [...new Set(roots.flatMap((file) => file.services.map((service) => service.typeName)))];
  const encoded = new Map<DescFile, Uint8Array>();

  // A client cannot link a file without its imports, so every answer carries the closure.
  function fileResponse(file: DescFile): ReflectionAnswer {
    const closure = new Map<string, DescFile>();
    collectFiles(file, closure);
    const fileDescriptorProto = [...closure.values()].map((f) => {
      let bytes = encoded.get(f);
      if (bytes === undefined) {
        bytes = toBinary(FileDescriptorProtoSchema, f.proto);
        encoded.set(f, bytes);
      }
      return bytes;
    });
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto } };
  }

  return {
    answer(query) {
      switch (query.case) {
        case "listServices":
          return { case: "listServicesResponse", value: { service: serviceNames.map((name) => ({ name })) } };
        case "fileByFilename": {
          const file = filesByName.get(query.value);
          return file ? fileResponse(file) : notFound(`file "${query.value}" not found`);
        }
        case "fileContainingSymbol": {
          const file = findFileContainingSymbol(registry, query.value);
          return file ? fileResponse(file) : notFound(`symbol "${query.value}" not found`);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = query.value;
          const message = registry.getMessage(containingType);
          const extension = message ? registry.getExtensionFor(message, extensionNumber) : undefined;
          return extension
            ? fileResponse(extension.file)
            : notFound(`extension ${extensionNumber} of "${containingType}" not found`);
        }
        case "allExtensionNumbersOfType": {
          const typeName = query.value;
          if (!registry.getMessage(typeName)) {
            return notFound(`message type "${typeName}" not found`);
          }
          const extensionNumber: number[] = [];
          for (const desc of registry) {
            if (desc.kind === "extension" && desc.extendee.typeName === typeName) {
              extensionNumber.push(desc.number);
            }
          }
          return { case: "allExtensionNumbersResponse", value: { baseTypeName: typeName, extensionNumber } };
        }
        case undefined:
          return {
            case: "errorResponse",
            value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" },
          };
      }
    },
  };
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

function uniqueFiles(files: DescFile[]): DescFile[] {
  const byName = new Map<string, DescFile>();
  for (const file of files) {
    byName.set(file.proto.name, file);
  }
  return [...byName.values()];
}

/** Adds the file and, depth first, everything it imports (the file itself comes first). */
function collectFiles(file: DescFile, into: Map<string, DescFile>): void {
  if (into.has(file.proto.name)) {
    return;
  }
  into.set(file.proto.name, file);
  for (const dependency of file.dependencies) {
    collectFiles(dependency, into);
  }
}

/**
 * The registry knows top-level and nested types, services and extensions; members (methods,
 * fields, oneofs, enum values) are resolved through their parent, as protoc names them.
 */
function findFileContainingSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const type = registry.get(symbol);
  if (type) {
    return type.file;
  }
  const dot = symbol.lastIndexOf(".");
  if (dot <= 0) {
    return undefined;
  }
  const parentName = symbol.slice(0, dot);
  const member = symbol.slice(dot + 1);
  const parent = registry.get(parentName);
  if (parent?.kind === "service") {
    return parent.methods.some((method) => method.name === member) ? parent.file : undefined;
  }
  if (parent?.kind === "message" && hasMember(parent, member)) {
    return parent.file;
  }
  // Enum values are scoped as siblings of their enum: "pkg.Enum.VALUE" is spelled "pkg.VALUE".
  for (const desc of registry) {
    if (desc.kind === "enum" && enumScope(desc) === parentName && desc.values.some((v) => v.name === member)) {
      return desc.file;
    }
  }
  return undefined;
}

function hasMember(message: DescMessage, member: string): boolean {
  return (
    message.fields.some((field) => field.name === member) ||
    message.oneofs.some((oneof) => oneof.name === member)
  );
}

function enumScope(desc: DescEnum): string {
  const dot = desc.typeName.lastIndexOf(".");
  return dot < 0 ? "" : desc.typeName.slice(0, dot);
}
