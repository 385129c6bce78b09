import type { DescMessage, Message } from "@bufbuild/protobuf";
import { violationsToProto } from "@bufbuild/protovalidate";
import { Code, ConnectError } from "@connectrpc/connect";
import { requestValidator } from "./request-validator.js";
import { assertStorable } from "./storable-interceptor.js";

/**
 * Both checks every request message gets, for a transport that does not run connect-node's
 * interceptors (wire-control-stream.ts): first the values no column can store
 * (storable-interceptor.ts), then the protovalidate rules, refused exactly as
 * @connectrpc/validate's interceptor refuses them (InvalidArgument with the violations as a
 * detail).
 */
export type RequestRules = (schema: DescMessage, message: Message) => void;

export function requestRules(): RequestRules {
  const validator = requestValidator();
  return (schema, message) => {
    assertStorable(schema, message);
    const result = validator.validate(schema, message);
    if (result.kind === "valid") return;
    const details = [];
    if (result.violations) {
      const [value, desc] = violationsToProto(result.violations);
      details.push({ desc, value });
    }
    throw new ConnectError(result.error.message, Code.InvalidArgument, undefined, details, result.error);
  };
}
