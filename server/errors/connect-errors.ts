import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
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
    const error = new ConnectError(err.message, code);
    if (err.retryAfterMs !== undefined) {
      // gRPC clients read this trailer-style hint; the message carries it for everyone else.
      error.metadata.set("retry-after", String(Math.ceil(err.retryAfterMs / 1000)));
    }
    return error;
  }
  logger.error({ err }, "unexpected error");
  return new ConnectError("internal error", Code.Internal);
}
