import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, RetryInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Logger } from "pino";
import { ERROR_DOMAIN } from "../../client/reasons.js";
import {
  AlreadyExistsError,
  DomainError,
  FailedPreconditionError,
  InvalidInputError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitedError,
  UnauthenticatedError,
} from "./errors.js";

// biome-ignore lint/complexity/noBannedTypes: keyed by the error classes themselves
const CODES = new Map<Function, Code>([
  [UnauthenticatedError, Code.Unauthenticated],
  [PermissionDeniedError, Code.PermissionDenied],
  [NotFoundError, Code.NotFound],
  [AlreadyExistsError, Code.AlreadyExists],
  [FailedPreconditionError, Code.FailedPrecondition],
  [InvalidInputError, Code.InvalidArgument],
  [RateLimitedError, Code.ResourceExhausted],
]);

/**
 * The one mapping from errors to Connect codes. Domain errors keep their message; anything
 * unexpected becomes `Internal` with a generic message, and the cause is logged, never sent.
 */
export function toConnectError(err: unknown, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof DomainError) {
    const code = CODES.get(err.constructor) ?? Code.Internal;
    const details = [];
    if (err.reason) details.push({ desc: ErrorInfoSchema, value: { reason: err.reason, domain: ERROR_DOMAIN } });
    if (err.retryAfterMs !== undefined) details.push({ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(err.retryAfterMs) } });
    // The domain error rides along as the cause (never sent): the telemetry interceptor reads
    // which limit refused, or the reason, from it.
    const error = new ConnectError(err.message, code, undefined, details, err);
    if (err.retryAfterMs !== undefined) {
      // Also as a plain header/trailer, for clients that do not decode details.
      error.metadata.set("retry-after", String(Math.ceil(err.retryAfterMs / 1000)));
    }
    return error;
  }
  logger.error({ err }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
